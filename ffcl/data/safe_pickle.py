"""Reading data sets that come as pickles (MNIST's ``mnist.pkl.gz``, CIFAR's python batches)
without running code from them.

``pickle`` calls whatever a file names: a crafted ``mnist.pkl.gz`` in a data root runs its code on
``pickle.loads``. These formats hold only numbers, strings, bytes, lists, tuples, dicts and numpy
arrays, so :func:`loads` resolves only the names that rebuild a numpy array (and ``_codecs.encode``,
which Python 3 pickles of bytes use); anything else is refused before it is called, as
``torch.load(weights_only=True)`` does for tensors.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

__all__ = ["UnsafePickleError", "loads"]

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
    ("_codecs", "encode"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """A data pickle names something other than plain data: it was not loaded."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise UnsafePickleError(f"it names {module}.{name}, which a data file has no use for (refused, nothing was run)")
        return super().find_class(module, name)


def loads(data: bytes, *, encoding: str = "ASCII") -> Any:
    """``pickle.loads`` that rebuilds only plain data and numpy arrays (:data:`_ALLOWED`)."""
    return _DataUnpickler(io.BytesIO(data), encoding=encoding).load()
