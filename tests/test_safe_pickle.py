"""Data sets that come as pickles run no code from them (issue 26, item 1): a crafted MNIST
``mnist.pkl.gz`` or CIFAR batch in a data root is refused before anything it names is called."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from ffcl.data import DataError, load_dataset
from ffcl.data import safe_pickle


class _Payload:
    """Unpickling it calls os.system: the marker file appears if any code from the file runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_plain_data_and_numpy_arrays_load():
    data = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], b"names": [b"a", "b"], "f": 1.5}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = safe_pickle.loads(pickle.dumps(data, protocol=protocol), encoding="bytes")
        assert np.array_equal(back[b"data"], data[b"data"]) and back[b"labels"] == [1, 2, 3] and back["f"] == 1.5


def test_anything_else_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(safe_pickle.UnsafePickleError, match="posix.system|os.system"):
        safe_pickle.loads(pickle.dumps({"x": _Payload(marker)}))
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is real: plain pickle runs it
    assert marker.exists()


def test_a_crafted_mnist_pickle_runs_no_code(tmp_path):
    marker = tmp_path / "ran"
    root = tmp_path / "received"
    root.mkdir()
    (root / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(((_Payload(marker), 0), (0, 0), (0, 0)), protocol=2)))
    with pytest.raises(DataError, match="cannot read MNIST") as err:
        load_dataset("mnist", root)
    assert "\n" not in str(err.value) and "nothing was run" in str(err.value)
    assert not marker.exists()


def test_a_crafted_cifar_batch_runs_no_code(tmp_path):
    marker = tmp_path / "ran"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 1]}
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(good, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}, protocol=2))
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()
