"""Streams from any Python iterable of ``(x, y)`` batches: a queue, a file tail, a sensor.

``stream_from_batches(batches)`` is an Avalanche stream whose experiences are the batches as they
arrive (nothing is read ahead or kept), for any Avalanche strategy::

    stream = stream_from_batches(my_source())          # yields (images, labels) batches
    for exp in stream:
        strategy.train(exp)                            # PrequentialAccuracy in its evaluator scores each batch first

Images may be numpy arrays or tensors, ``[N, C, H, W]``, ``[N, H, W]`` or flat ``[N, D]``;
``uint8`` images are scaled to [0, 1]. Labels are non-negative integers below the strategy's
number of classes (``ffcl.StreamLearner`` maps any labels and grows the label set).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import CLStream
from avalanche.benchmarks.utils.classification_dataset import _as_taskaware_supervised_classification_dataset
from torch.utils.data import TensorDataset

from .datasets import DataError

__all__ = ["stream_from_batches", "as_batch", "experience_of"]


def as_batch(x: Any, y: Any | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images as float32 tensors (``uint8`` scaled to [0, 1]) and labels as int64, checked."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if x.ndim < 2:
        raise DataError(f"a batch of inputs needs shape [N, ...], got {tuple(x.shape)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    if x.ndim == 3:  # [N, H, W]: one channel
        x = x[:, None]
    if not torch.isfinite(x).all():
        raise DataError("the batch holds NaN or infinite inputs; replace or drop those samples")
    if y is None:
        return x, None
    y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
    if y.ndim != 1 or len(y) != len(x) or y.is_floating_point() or (len(y) and int(y.min()) < 0):
        raise DataError(f"labels must be {len(x)} non-negative integers, one per input; got {y.dtype} {tuple(y.shape)}")
    return x, y.long()


def experience_of(x: torch.Tensor, y: torch.Tensor, index: int = 0, stream: CLStream | None = None) -> DatasetExperience:
    """One Avalanche experience holding the tensors ``x``, ``y`` (experience ``index`` of ``stream``,
    by default of a training stream of its own)."""
    exp = DatasetExperience(dataset=_as_taskaware_supervised_classification_dataset(TensorDataset(x, y)), current_experience=index)
    exp.origin_stream = stream if stream is not None else CLStream("train", [])
    return exp


class _Batches:
    """An iterable, not a generator, so Avalanche's ``CLStream`` keeps no arriving batch in memory."""

    def __init__(self, batches: Iterable[tuple[Any, Any]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[DatasetExperience]:
        for item in self.batches:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise DataError(f"a stream must yield (x, y) pairs, got {type(item).__name__}")
            yield experience_of(*as_batch(*item))


def stream_from_batches(batches: Iterable[tuple[Any, Any]], name: str = "train") -> CLStream:
    """An Avalanche stream whose experience i is the i-th ``(x, y)`` batch of ``batches``, read
    only when the strategy reaches it."""
    return CLStream(name, _Batches(batches))
