"""Memory of a run: the process's peak and current resident set, and the GPU's allocations."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import sys

import torch

__all__ = ["peak_memory_mb", "resident_memory_mb", "freeze_imported_objects"]

_frozen = False


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory in MiB: ``torch.cuda.max_memory_allocated`` on a GPU, else the process's peak RSS.

    The RSS peak covers the whole process (Python, torch and the data set included), so compare
    runs made in separate processes, as ``ffcl compare`` does.
    """
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def resident_memory_mb(device: torch.device | str = "cpu") -> float:
    """Memory held now in MiB: ``torch.cuda.memory_allocated`` on a GPU, else the process's
    resident set (Linux ``/proc/self/statm``; elsewhere the peak, the best the OS tells), read
    after a garbage collection and, with glibc, after returning freed heap pages to the OS
    (``malloc_trim``), so that it counts what is held rather than what the allocator kept."""
    if torch.device(device).type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_memory_mb(device)


def freeze_imported_objects() -> None:
    """Move every object alive now into the garbage collector's permanent generation (``gc.freeze``),
    once per process. Call it after the imports: :func:`resident_memory_mb` collects garbage after
    every experience, and a full collection that walks the ~500,000 objects of torch's and
    Avalanche's modules costs about half a second each time; frozen, it costs milliseconds."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
