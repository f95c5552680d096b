"""The machine and software a measurement ran on: written with every run's metrics and every
benchmark's JSON, so that a number can be reproduced."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

__all__ = ["usable_cpus", "machine_info"]


def usable_cpus() -> list[int]:
    """The CPU cores this process may run on (its affinity where the OS tells it)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def machine_info() -> dict[str, Any]:
    """Platform, CPUs, library versions, torch's threads and determinism, and the GPU if any."""
    from importlib.metadata import version

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": len(usable_cpus()),
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "avalanche-lib", "numpy", "scikit-learn")},
        "ffcl": version("ffcl"),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
