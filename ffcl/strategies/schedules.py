"""Learning-rate schedules as plugins a recipe can add (``[plugins.cosine_lr]``).

Avalanche's ``LRSchedulerPlugin`` wraps a torch scheduler, which needs the optimiser when it is
built; recipes build their plugins before the learner (and its optimiser), so this plugin reads
the optimiser from the strategy when training starts instead.
"""

from __future__ import annotations

import math
from typing import Any

from avalanche.core import SupervisedPlugin

from .registry import BuildContext, register_plugin

__all__ = ["CosineLR"]


class CosineLR(SupervisedPlugin):
    """Cosine decay from the optimiser's learning rate to ``min_ratio`` times it over the iterations
    of each training experience (restarting at every experience)."""

    def __init__(self, min_ratio: float = 0.0) -> None:
        super().__init__()
        self.min_ratio = min_ratio
        self.base: list[float] | None = None
        self.step = self.total = 0

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.base is None:
            self.base = [g["lr"] for g in strategy.optimizer.param_groups]
        self.step, self.total = 0, max(1, len(strategy.dataloader) * strategy.train_epochs)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        factor = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * self.step / self.total))
        for group, lr in zip(strategy.optimizer.param_groups, self.base):
            group["lr"] = lr * factor
        self.step += 1


@register_plugin("cosine_lr")
def cosine_lr(ctx: BuildContext, min_ratio: float = 0.0) -> CosineLR:
    """Cosine learning-rate decay over each experience."""
    return CosineLR(min_ratio)
