"""Peak memory of a run: the process's peak resident set, and the GPU's peak allocation."""

from __future__ import annotations

import resource
import sys

import torch

__all__ = ["peak_memory_mb"]


def peak_memory_mb(device: torch.device | str = "cpu") -> float:
    """Peak memory in MiB: ``torch.cuda.max_memory_allocated`` on a GPU, else the process's peak RSS.

    The RSS peak covers the whole process (Python, torch and the data set included), so compare
    runs made in separate processes, as ``ffcl compare`` does.
    """
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10
