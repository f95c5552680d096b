"""Streams of experiences built with Avalanche's (non-deprecated) benchmark API.

* class-incremental: ``class_incremental_benchmark`` splits the classes into experiences, in a
  fixed order, the natural order, or an order shuffled by the seed (e.g. Split-MNIST 5x2);
* joint: one experience with every class, the usual upper bound;
* task-incremental: the same class groups, each experience a task whose label (0, 1, ...) every
  sample carries at training and test time (Avalanche's ``task_incremental_benchmark``); a learner
  predicts among its task's classes only (ffcl.strategies.heads);
* domain-incremental: the same class groups relabelled by their position in the experience, so
  every experience shares one label set and no task label is given (Split-MNIST domain-IL: "first
  or second digit of the pair"; van de Ven, Tuytelaars and Tolias, Nature Machine Intelligence 2022);
* permuted: each experience is the whole data set under its own fixed pixel permutation (the first
  is the identity), posed in any of the three kinds (Permuted MNIST: domain-incremental);
* drift (domain shift): every class in every experience, the inputs increasingly rotated or
  noisy from one experience to the next (e.g. Rotated MNIST);
* online: the training samples seen once in small minibatches; optionally each experience is cut
  into Avalanche online mini-experiences (``split_online_stream``). The test stream stays per
  experience.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torchvision.transforms.functional as TF
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.online import split_online_stream
from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark, with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import task_incremental_benchmark
from avalanche.benchmarks.utils.classification_dataset import _as_taskaware_supervised_classification_dataset
from torch.utils.data import TensorDataset

from .datasets import DataError, TensorData

__all__ = ["KINDS", "Stream", "make_stream", "make_drift_stream", "permuted", "shift", "experience_classes"]

KINDS = ("class_incremental", "task_incremental", "domain_incremental")  # the three types of incremental learning


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
    mini_experiences: bool = False
    kind: str = "class_incremental"
    class_names: tuple[str, ...] = ()

    @property
    def task_labels(self) -> bool:
        """Whether every sample carries its task's label, at training and test time (task-IL)."""
        return self.kind == "task_incremental"

    @property
    def n_experiences(self) -> int:
        return len(self.classes_per_experience)


def make_stream(
    data: TensorData,
    n_experiences: int = 5,
    *,
    class_order: list[int] | None = None,
    classes_per_experience: list[int] | None = None,
    shuffle_classes: bool = False,
    seed: int = 0,
    online: bool = False,
    online_experience_size: int | None = None,
    kind: str = "class_incremental",
) -> Stream:
    """Split ``data`` into a class-incremental stream (``n_experiences=1`` gives the joint stream),
    or pose the same split as a task- or domain-incremental one (``kind``, one of :data:`KINDS`).

    Each experience gets ``num_classes // n_experiences`` classes; the last one also takes the rest.
    ``classes_per_experience`` (e.g. ``[3, 2, 2, 2, 1]``) sets the counts instead, and the number
    of experiences to its length.

    The classes come in ``class_order`` if given, else shuffled by ``seed`` if ``shuffle_classes``,
    else in their natural order. ``online`` marks the stream as seen once (the runner trains one
    pass in small minibatches); ``online_experience_size`` also cuts each training experience into
    Avalanche online mini-experiences of that many samples.

    ``kind="task_incremental"`` gives experience i the task label i (on every sample, training and
    test); ``kind="domain_incremental"`` relabels each class by its position in its experience's
    class order (experiences must then hold equally many classes), so that the label set is shared
    and the class names join the names of the classes behind each label (``"0|2|4|6|8"``).
    """
    if kind not in KINDS:
        raise DataError(f"kind must be one of {', '.join(KINDS)}, got '{kind}'")
    present = torch.unique(data.y_train).tolist()  # every class of a data set; the new ones for `ffcl adapt`
    tested = torch.unique(data.y_test).tolist()
    if tested != present:
        only_test, only_train = sorted(set(tested) - set(present)), sorted(set(present) - set(tested))
        raise DataError(
            f"'{data.name}': every class needs training and test images; "
            + (f"classes {only_test} appear only in the test set" if only_test else f"classes {only_train} have no test images")
            + ": drop those images or add the missing ones"
        )
    n_classes = len(present)
    if classes_per_experience is not None:
        if sum(classes_per_experience) != n_classes or min(classes_per_experience, default=0) < 1:
            raise DataError(
                f"classes_per_experience must be positive counts summing to the {n_classes} classes of '{data.name}', got {classes_per_experience}"
            )
        n_experiences = len(classes_per_experience)
    if not 1 <= n_experiences <= n_classes:
        raise DataError(
            f"n_experiences must be between 1 and the {n_classes} classes of '{data.name}', got {n_experiences}"
        )
    if class_order is not None:
        if sorted(class_order) != present:
            raise DataError(
                f"class_order must be a permutation of the classes {_span(present)} of '{data.name}', got {class_order}"
            )
        order = list(class_order)
    elif shuffle_classes:
        order = [present[i] for i in torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed)).tolist()]
    else:
        order = present

    # Avalanche's num_experiences drops the remainder classes; give the remainder to the last experience
    per = n_classes // n_experiences
    sizes = list(classes_per_experience or [per] * (n_experiences - 1) + [n_classes - per * (n_experiences - 1)])
    groups = [order[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(n_experiences)]
    names = tuple(data.class_names)
    if kind == "domain_incremental":
        benchmark, per_exp, names = _by_position(data, groups)
    elif present == list(range(n_classes)):
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
    else:  # labels with gaps (new classes of a run's label space): Avalanche wants labels 0..max, split by hand
        def parts(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [(x[torch.isin(y, g)], y[torch.isin(y, g)]) for g in map(torch.tensor, groups)]

        benchmark = _from_parts(parts(data.x_train, data.y_train), parts(data.x_test, data.y_test))
    if kind != "domain_incremental":
        per_exp = [sorted(int(c) for c in exp.classes_in_this_experience) for exp in benchmark.test_stream]
    if kind == "task_incremental":
        benchmark = with_classes_timeline(task_incremental_benchmark(benchmark, reset_task_labels=True))
    return _finish(benchmark, per_exp, data, seed, online, online_experience_size, kind, names)


def _relabelled(x: torch.Tensor, y: torch.Tensor, groups: list[list[int]], position: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The samples of each group of classes, relabelled through ``position``, laid out as Avalanche's
    ``class_incremental_benchmark`` lays them out (class after class, from the group's last), so a
    stream and its domain-incremental form draw the same minibatches from one seed."""
    parts = []
    for g in groups:
        keep = torch.cat([(y == c).nonzero().flatten() for c in reversed(g)])
        parts.append((x[keep], position[y[keep]]))
    return parts


def _by_position(data: TensorData, groups: list[list[int]]) -> tuple[Any, list[list[int]], tuple[str, ...]]:
    """The domain-incremental benchmark whose experience i holds the classes ``groups[i]``, each
    relabelled by its position in its group; the per-experience classes and the shared names."""
    width = len(groups[0])
    if any(len(g) != width for g in groups):
        raise DataError(f"a domain-incremental stream shares one label set, so every experience needs as many classes; "
                        f"got {[len(g) for g in groups]} classes per experience: change n_experiences or classes_per_experience")
    position = torch.zeros(max(max(g) for g in groups) + 1, dtype=torch.long)
    for g in groups:
        position[torch.tensor(g)] = torch.arange(width)
    names = data.class_names
    joined = tuple("|".join(dict.fromkeys(names[g[i]].split(PERMUTATION_MARK)[0] for g in groups)) for i in range(width))
    benchmark = _from_parts(_relabelled(data.x_train, data.y_train, groups, position), _relabelled(data.x_test, data.y_test, groups, position))
    return benchmark, [list(range(width))] * len(groups), joined


PERMUTATION_MARK = "@perm"


def permuted(data: TensorData, n_permutations: int, seed: int = 0) -> TensorData:
    """``data`` under ``n_permutations`` fixed pixel permutations (the first the identity, the
    others drawn from ``seed``), as one data set whose permutation p holds the classes
    ``p * C .. p * C + C - 1`` (C: ``data``'s classes; class names ``"3"``, ``"3@perm1"``, ...).
    Split it into ``n_permutations`` experiences of C classes: the Permuted MNIST stream of
    Goodfellow et al. (2013) and Kirkpatrick et al. (2017, EWC), in any of the three kinds."""
    if n_permutations < 1:
        raise DataError(f"a permuted stream needs at least one permutation, got {n_permutations}")
    g = torch.Generator().manual_seed(seed)
    pixels = data.x_train[0].numel()
    perms = [torch.arange(pixels)] + [torch.randperm(pixels, generator=g) for _ in range(n_permutations - 1)]
    c = data.num_classes

    def apply(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat, n = x.flatten(1), len(x)
        xs = torch.empty((n_permutations * n, pixels), dtype=x.dtype)
        for i, p in enumerate(perms):  # written in place: no second copy of the whole stream
            torch.index_select(flat, 1, p, out=xs[i * n : (i + 1) * n])
        return xs.view(n_permutations * n, *x.shape[1:]), torch.cat([y + i * c for i in range(n_permutations)])

    x_train, y_train = apply(data.x_train, data.y_train)
    x_test, y_test = apply(data.x_test, data.y_test)
    names = tuple(n if i == 0 else f"{n}{PERMUTATION_MARK}{i}" for i in range(n_permutations) for n in data.class_names)
    return TensorData(f"permuted_{data.name}", x_train, y_train, x_test, y_test, names)


def _span(classes: list[int]) -> str:
    return f"0..{len(classes) - 1}" if classes == list(range(len(classes))) else str(classes)


def shift(x: torch.Tensor, kind: str, amount: float, seed: int = 0) -> torch.Tensor:
    """Images ``x`` [N, C, H, W] rotated by ``amount`` degrees, or with Gaussian noise of standard
    deviation ``amount`` (clipped to [0, 1], drawn from ``seed``)."""
    if kind == "rotate":
        return TF.rotate(x, amount, interpolation=TF.InterpolationMode.BILINEAR) if amount else x
    if kind == "noise":
        g = torch.Generator().manual_seed(seed)
        return (x + amount * torch.randn(x.shape, generator=g)).clamp(0, 1)
    raise DataError(f"drift must be 'rotate' or 'noise', got '{kind}'")


def make_drift_stream(
    data: TensorData,
    n_experiences: int = 5,
    *,
    drift: str = "rotate",
    strength: float = 90.0,
    seed: int = 0,
    online: bool = False,
    online_experience_size: int | None = None,
) -> Stream:
    """A domain-drift stream: every class in every experience, the inputs shifted more each time.

    The training set is shuffled by ``seed`` and cut into ``n_experiences`` equal parts (each
    sample arrives once); part i and test experience i (the whole test set) are shifted by
    ``strength * i / (n_experiences - 1)`` (degrees for ``rotate``, noise std for ``noise``).
    """
    if n_experiences < 2:
        raise DataError(f"a drift stream needs n_experiences >= 2, got {n_experiences}")
    perm = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    train, test = [], []
    for i, part in enumerate(perm.chunk(n_experiences)):
        amount = strength * i / (n_experiences - 1)
        x_tr = shift(data.x_train[part], drift, amount, seed + i)
        x_te = shift(data.x_test, drift, amount, seed + 1000 + i)
        train.append((x_tr, data.y_train[part]))
        test.append((x_te, data.y_test))
    benchmark = _from_parts(train, test)
    per_exp = [list(range(data.num_classes))] * n_experiences
    return _finish(benchmark, per_exp, data, seed, online, online_experience_size)


def _from_parts(train: list[tuple[torch.Tensor, torch.Tensor]], test: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    """An Avalanche benchmark whose experience i is the tensors ``train[i]`` / ``test[i]``."""

    def wrap(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> list[Any]:
        return [_as_taskaware_supervised_classification_dataset(TensorDataset(x, y)) for x, y in parts]

    return with_classes_timeline(benchmark_from_datasets(train=wrap(train), test=wrap(test)))


def _finish(benchmark: Any, per_exp: list[list[int]], data: TensorData, seed: int, online: bool, online_experience_size: int | None,
            kind: str = "class_incremental", names: tuple[str, ...] | None = None) -> Stream:
    train_stream: Iterable[Any] = benchmark.train_stream
    if online and online_experience_size is not None:
        train_stream = split_online_stream(
            benchmark.train_stream,
            experience_size=online_experience_size,
            shuffle=True,
            seed=seed,
            access_task_boundaries=True,
        )
    return Stream(
        benchmark=benchmark,
        train_stream=train_stream,
        test_stream=benchmark.test_stream,
        classes_per_experience=per_exp,
        num_classes=len(names) if names is not None else data.num_classes,
        input_shape=tuple(data.input_shape),
        online=online,
        mini_experiences=online and online_experience_size is not None,
        kind=kind,
        class_names=tuple(names if names is not None else data.class_names),
    )


def experience_classes(experience: Any) -> list[int]:
    """The classes of an Avalanche experience: its ``classes_in_this_experience``, or, for online
    mini-experiences (``OnlineCLExperience``, which lack it), the labels of its own data."""
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = torch.unique(torch.as_tensor(list(experience.dataset.targets))).tolist()
    return sorted(int(c) for c in classes)
