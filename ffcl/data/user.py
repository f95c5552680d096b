"""User data: an ``.npz`` file (``npz:/path/file.npz``) or a folder of images in class
sub-folders (``folder:/path/to/images``); see docs/data.md for the layouts.

An npz is read with ``allow_pickle=False`` and its labels made dense; an image folder is listed
without following links out of a class folder, each file read once, and its decoded images cached
in the data root (ffcl.data.cache) under a hash of its files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .cache import CACHE_DIR, UNWRITABLE, read_cache, write_cache
from .tensor_data import Arrays, DataError, TensorData, tensor_data

if TYPE_CHECKING:
    from PIL.Image import Image
    from torchvision.datasets import ImageFolder

__all__ = ["load_npz", "load_folder"]


def _split_test(x: np.ndarray, y: np.ndarray, source: Path, fix: str) -> tuple[np.ndarray, ...]:
    """``x_train, x_test, y_train, y_test``: a fixed stratified 20% test split (``random_state=0``)."""
    from sklearn.model_selection import train_test_split

    try:
        return tuple(train_test_split(x, y, test_size=0.2, random_state=0, stratify=y))
    except ValueError as exc:
        raise DataError(f"cannot split a stratified 20% test set off {source} ({exc}): {fix}") from None


def load_npz(path: Path) -> TensorData:
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
        return tensor_data(path.stem, x, y, x_test, y_test, tuple(str(int(c)) for c in present))
    n_classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    names = tuple(str(s) for s in np.asarray(arrays["class_names"]).ravel())
    if len(names) < n_classes:
        raise DataError(f"{path}: {len(names)} class_names for labels up to {n_classes - 1}: add the missing names")
    return tensor_data(path.stem, x, y, x_test, y_test, names)


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


def load_folder(path: Path, root: Path, write: bool = True) -> TensorData:
    """User images in class sub-folders, ``path/<class>/*`` or ``path/{train,test}/<class>/*`` (see docs/data.md).

    Classes and files are found and read by torchvision's ``ImageFolder``; the decoded images are
    cached in ``root/ffcl-cache/`` under a hash of the folder's path and its files' names, sizes and mtimes
    (``write=False``: an existing cache is read, none is written).
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
    cache = root / CACHE_DIR / f"folder-{digest}-{_folder_files_hash(path, parts)}.npz"
    arrays = read_cache(cache)
    if arrays is None:
        arrays = _decode_folder(path, parts)
        if not write:
            return tensor_data(path.name, *arrays)
        write_cache(cache, arrays)
        if cache.parent not in UNWRITABLE:  # drop the caches of earlier versions of this folder
            for old in cache.parent.glob(f"folder-{digest}-*.npz"):
                if old != cache:
                    with contextlib.suppress(OSError):
                        old.unlink()
    return tensor_data(path.name, *arrays)


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


def _decode_folder(path: Path, parts: list[ImageFolder]) -> Arrays:
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
