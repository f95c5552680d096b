"""The data root and the cache of decoded data sets.

Loaders search the data root (``$FFCL_DATA_ROOT`` or ``~/.cache/ffcl``) and cache the decoded
images there as ``<root>/ffcl-cache/<name>.npz`` (read with ``allow_pickle=False``), so that later
loads take a fraction of a second. An unreadable cache is ignored with a warning and decoded again;
a folder that cannot be written is warned about once and not cached in.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .tensor_data import Arrays

__all__ = ["CACHE_DIR", "UNWRITABLE", "default_data_root", "read_cache", "write_cache", "check_arrays"]

CACHE_DIR = "ffcl-cache"
UNWRITABLE: set[Path] = set()  # cache folders we failed to write to (warned once each)


def default_data_root() -> Path:
    """The folder the loaders search and cache in: ``$FFCL_DATA_ROOT`` if set, else ``~/.cache/ffcl``."""
    env = os.environ.get("FFCL_DATA_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ffcl"


def read_cache(path: Path) -> Arrays | None:
    """The arrays cached at ``path``, or None if there is no (readable) cache."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = (npz["x_train"], npz["y_train"], npz["x_test"], npz["y_test"],
                      tuple(str(s) for s in npz["class_names"]))
        check_arrays(*arrays)
        return arrays
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring the unreadable cache {path} ({exc}); decoding the data set again", stacklevel=3)
        return None


def check_arrays(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, names: tuple[str, ...]) -> None:
    """ValueError unless the arrays are images [N, C, H, W] with one label (< the number of names) each."""
    for x, y in ((x_train, y_train), (x_test, y_test)):
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or x.dtype not in (np.uint8, np.float32):
            raise ValueError(f"images {x.dtype} {x.shape} and labels {y.shape} do not fit")
        if y.size and not (np.issubdtype(y.dtype, np.integer) and 0 <= y.min() and y.max() < len(names)):
            raise ValueError(f"labels outside 0..{len(names) - 1}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"training images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ")


def write_cache(path: Path, arrays: Arrays) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file + rename); warn once per folder if impossible."""
    if path.parent in UNWRITABLE:
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
        UNWRITABLE.add(path.parent)
        warnings.warn(f"not caching decoded data sets: cannot write to {path.parent} ({exc}); set "
                      f"FFCL_DATA_ROOT or data_root to a writable folder for faster loads", stacklevel=3)
