"""The interface every FF objective implements, and the objective registry."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["Objective", "OBJECTIVES", "register_objective", "make_objective"]


class Objective(nn.Module):
    """A layer-local goodness and loss.

    ``goodness(h)`` maps layer activities ``h[..., D]`` to one score per candidate ``[...]``;
    ``loss(h)`` takes the activities of one layer for a positive and K negative candidates,
    ``h[B, 1+K, D]`` (column 0 is the true label), and returns a scalar. ``context`` is the
    goodness of the other layers, already detached, for objectives with layer collaboration.

    ``sums_over_units``: the goodness reads the activity only through sums over units (per half),
    so units that are zero can be left out: sparse inference then scores the k winners alone.
    """

    sums_over_units: bool = False

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def negative_loss(self, h: torch.Tensor) -> torch.Tensor:
        """Loss of unpaired negatives h[N, D] (e.g. self-generated images); only for objectives
        whose positive and negative terms are separate (Hinton FF, SFFA)."""
        raise NotImplementedError(f"{type(self).__name__} contrasts each positive with its own negatives; it takes no unpaired negatives")


OBJECTIVES: dict[str, Callable[..., Objective]] = {}


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator: a recipe can then name the objective."""

    def wrap(cls: type[Objective]) -> type[Objective]:
        OBJECTIVES[name] = cls
        return cls

    return wrap


def make_objective(name: str, **kwargs: object) -> Objective:
    """Build a registered objective by name."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective '{name}'; choose one of: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name](**kwargs)
