"""Streams of experiences built with Avalanche's (non-deprecated) benchmark API.

* class-incremental: ``class_incremental_benchmark`` splits the classes into experiences, in a
  fixed order, the natural order, or an order shuffled by the seed (e.g. Split-MNIST 5x2);
* joint: one experience with every class, the usual upper bound;
* online: each training experience cut into mini-experiences of a few samples, seen once
  (``split_online_stream``); the test stream stays per experience.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.benchmarks.scenarios.online import split_online_stream
from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
from torch.utils.data import TensorDataset

from .datasets import DataError, TensorData

__all__ = ["Stream", "make_stream"]


@dataclass
class Stream:
    """A benchmark ready for training: the Avalanche streams plus what a runner needs to know."""

    benchmark: Any
    train_stream: Iterable[Any]
    test_stream: Any
    classes_per_experience: list[list[int]]
    num_classes: int
    input_shape: tuple[int, ...]
    online: bool = False

    @property
    def n_experiences(self) -> int:
        return len(self.classes_per_experience)


def make_stream(
    data: TensorData,
    n_experiences: int = 5,
    *,
    class_order: list[int] | None = None,
    shuffle_classes: bool = False,
    seed: int = 0,
    online_batch_size: int | None = None,
) -> Stream:
    """Split ``data`` into a class-incremental stream (``n_experiences=1`` gives the joint stream).

    Each experience gets ``num_classes // n_experiences`` classes; the last one also takes the rest.

    The classes come in ``class_order`` if given, else shuffled by ``seed`` if ``shuffle_classes``,
    else in their natural order. ``online_batch_size`` makes the training stream online.
    """
    n_classes = data.num_classes
    if not 1 <= n_experiences <= n_classes:
        raise DataError(
            f"n_experiences must be between 1 and the {n_classes} classes of '{data.name}', got {n_experiences}"
        )
    if class_order is not None:
        if sorted(class_order) != list(range(n_classes)):
            raise DataError(
                f"class_order must be a permutation of 0..{n_classes - 1} for '{data.name}', got {class_order}"
            )
        order = list(class_order)
    elif shuffle_classes:
        order = torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed)).tolist()
    else:
        order = list(range(n_classes))

    # Avalanche's num_experiences drops the remainder classes; give the remainder to the last experience
    per = n_classes // n_experiences
    sizes = [per] * (n_experiences - 1) + [n_classes - per * (n_experiences - 1)]
    rng_state = torch.random.get_rng_state()  # Avalanche reseeds the global RNG; keep ours intact
    benchmark = class_incremental_benchmark(
        {
            "train": TensorDataset(data.x_train, data.y_train),
            "test": TensorDataset(data.x_test, data.y_test),
        },
        class_order=order,
        num_classes_per_exp=sizes,
    )
    torch.random.set_rng_state(rng_state)
    per_exp = [sorted(int(c) for c in exp.classes_in_this_experience) for exp in benchmark.test_stream]

    train_stream: Iterable[Any] = benchmark.train_stream
    if online_batch_size is not None:
        train_stream = split_online_stream(
            benchmark.train_stream,
            experience_size=online_batch_size,
            shuffle=True,
            seed=seed,
            access_task_boundaries=True,
        )
    return Stream(
        benchmark=benchmark,
        train_stream=train_stream,
        test_stream=benchmark.test_stream,
        classes_per_experience=per_exp,
        num_classes=n_classes,
        input_shape=tuple(data.input_shape),
        online=online_batch_size is not None,
    )
