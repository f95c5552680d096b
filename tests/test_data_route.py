"""A received run directory's recorded data location is never followed without trust (issue 26,
item 1): a crafted MNIST pickle and CIFAR batch in the recorded data_root run no code through
`ffcl run --resume`, `ffcl adapt` (both modes), `ffcl compare --out` or `ffcl report`."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil

import pytest

from ffcl.cli import main
from ffcl.experiment import run_experiment
from test_adapt import new_classes_npz

SMALL = ["scenario.n_experiences=2", "scenario.epochs=1"]


class _Boom:
    """A pickle whose loading runs a shell command (what a hostile data file would do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _craft(folder, marker):
    """A crafted mnist.pkl.gz and CIFAR-10 batches in ``folder`` (a recorded data_root)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(_Boom(marker))
    (folder / "mnist.pkl.gz").write_bytes(gzip.compress(payload))
    batches = folder / "cifar-10-batches-py"
    batches.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (batches / name).write_bytes(payload)


def _received(run, where, dataset, marker):
    """A copy of ``run`` as someone else would send it: its config names ``dataset`` read from a
    data_root inside the copy, which holds crafted pickles; the copy was written elsewhere."""
    shutil.copytree(run, where)
    config = json.loads((where / "config.json").read_text())
    config["scenario"]["dataset"] = dataset
    config["scenario"]["data_root"] = str(where / "data")
    (where / "config.json").write_text(json.dumps(config, indent=2))
    _craft(where / "data", marker)
    return where


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished and an interrupted naive run on Split-Digits."""
    from conftest import build_run_config, interrupt_at

    base = tmp_path_factory.mktemp("runs")
    run_experiment(build_run_config("split_digits", "naive", SMALL), base / "done", quiet=True)
    with pytest.MonkeyPatch.context() as m:
        interrupt_at(m, 1)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(build_run_config("split_digits", "naive", SMALL), base / "cut", quiet=True)
    return base / "done", base / "cut"


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_resume_refuses_a_received_data_root(runs, tmp_path, capsys, dataset):
    marker = tmp_path / "pwned"
    received = _received(runs[1], tmp_path / "received", dataset, marker)
    assert main(["run", "--resume", str(received), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "records its data at data_root" in err and "--trust-checkpoint" in err and "--data-root" in err
    assert len(err.strip().splitlines()) == 1 and not marker.exists()
    # trusted anyway: the data is read, through the restricted unpickler, which refuses the code
    assert main(["run", "--resume", str(received), "--quiet", "--trust-checkpoint"]) == 2
    assert not marker.exists() and not (received / "metrics.json").exists()


def test_resume_with_a_data_root_of_ones_own(runs, tmp_path, capsys):
    received = _received(runs[1], tmp_path / "received", "digits", tmp_path / "pwned")
    with open(received / "checkpoint.pt", "ab") as f:  # someone else's checkpoint: other bytes
        f.write(b"\0")
    assert main(["run", "--resume", str(received), "--quiet", "--data-root", str(tmp_path / "mine")]) == 2
    assert "was not written by ffcl on this machine" in capsys.readouterr().err  # past the data: the checkpoint's own check


def test_own_run_with_a_data_root_resumes(make_config, tmp_path, monkeypatch):
    from conftest import interrupt_at

    cfg = make_config("split_digits", "naive", SMALL + [f"scenario.data_root='{tmp_path / 'root'}'"])
    with monkeypatch.context() as m:
        interrupt_at(m, 1)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, tmp_path / "run", quiet=True)
    assert main(["run", "--resume", str(tmp_path / "run"), "--quiet"]) == 0


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_adapt_refuses_a_received_data_root(runs, tmp_path, capsys, dataset):
    marker = tmp_path / "pwned"
    received = _received(runs[0], tmp_path / "received", dataset, marker)
    data = new_classes_npz(tmp_path / "new.npz")
    assert main(["adapt", str(received), "--data", data, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "records its data at data_root" in err and "--trust-checkpoint" in err
    assert not marker.exists() and not (tmp_path / "a").exists()


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_weights_only_adapt_never_reads_the_recorded_data_root(runs, tmp_path, capsys, monkeypatch, dataset):
    marker = tmp_path / "pwned"
    received = _received(runs[0], tmp_path / "received", dataset, marker)
    monkeypatch.setenv("FFCL_DATA_ROOT", str(tmp_path / "empty_root"))  # the user's own (empty) root
    data = new_classes_npz(tmp_path / "new.npz")
    rc = main(["adapt", str(received), "--weights-only", "--data", data, "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert rc == 2 and str(received / "data") not in err and "empty_root" in err  # looked in the user's root only
    assert not marker.exists()


def test_compare_and_report_on_a_received_grid(runs, tmp_path, capsys):
    marker = tmp_path / "pwned"
    grid = tmp_path / "grid"
    grid.mkdir()
    _received(runs[1], grid / "naive-seed0", "mnist", marker)
    rc = main(["compare", "--scenario", "split_digits", "--strategies", "naive", "--seeds", "0", "--out", str(grid),
               "--workers", "1", *[a for o in SMALL for a in ("--set", o)]])
    assert rc != 0 and not marker.exists()
    report = _received(runs[0], tmp_path / "finished", "mnist", marker)
    assert main(["report", str(report)]) == 0  # reads only JSON
    assert not marker.exists()


def test_resume_refuses_a_recorded_feature_extractor(runs, tmp_path, capsys):
    received = _received(runs[1], tmp_path / "received", "digits", tmp_path / "pwned")
    config = json.loads((received / "config.json").read_text())
    config["scenario"]["data_root"] = None
    config["strategy"]["learner_args"] = {"feature_extractor": str(received / "model.pt")}
    (received / "config.json").write_text(json.dumps(config))
    assert main(["run", "--resume", str(received), "--quiet"]) == 2
    assert "TorchScript feature_extractor" in capsys.readouterr().err
