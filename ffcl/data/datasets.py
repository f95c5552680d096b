"""Image-classification data sets as in-memory tensors.

``load_dataset(name)`` returns a :class:`TensorData`: float32 images ``[N, C, H, W]`` in ``[0, 1]``
and int64 labels, split into train and test. Nothing is downloaded: each loader reads the
standard on-disk format (torchvision's layouts) from a data root (``$FFCL_DATA_ROOT`` or
``~/.cache/ffcl``), then a few system-wide places, and caches the decoded images as
``<root>/ffcl-cache/<name>.npz`` so that later loads take a fraction of a second. A missing or
malformed data set raises :class:`DataError` with a one-line message saying how to get it.
User data comes from ``"npz:/path/file.npz"`` or an image folder ``"folder:/path/to/images"``.
See docs/data.md for the lookup order of each data set.

This module picks the loader by name. The built-in data sets are decoded in ffcl.data.sources,
user data in ffcl.data.user, the data root and the cache are ffcl.data.cache, and
:class:`TensorData` is in ffcl.data.tensor_data.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from .cache import CACHE_DIR, default_data_root, read_cache, write_cache
from .sources import ALIASES, DATASETS, LOADERS, digits, missing, synthetic
from .tensor_data import DataError, TensorData, tensor_data
from .user import load_folder, load_npz

__all__ = ["DATASETS", "DataError", "TensorData", "default_data_root", "load_dataset", "synthetic"]


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
        return load_npz(Path(name[4:]).expanduser())
    if name.startswith("folder:"):
        _reject_options(name, kwargs)
        return load_folder(Path(name[7:]).expanduser(), root, cache)
    key = ALIASES.get(name.lower(), name.lower())
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
        return digits()
    decode = LOADERS[key][0]
    cached = root / CACHE_DIR / f"{key}.npz"
    arrays = read_cache(cached)
    if arrays is None:
        arrays = decode(root)
        if arrays is None:
            raise DataError(missing(key, root))
        if cache:
            write_cache(cached, arrays)
    return tensor_data(key, *arrays)


def _reject_options(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise DataError(f"{name} takes no options (got {', '.join(sorted(kwargs))}): only 'synthetic' does")
