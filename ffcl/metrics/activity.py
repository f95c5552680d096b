"""Per-block activity of FF learners: how sparse each layer fires, and how many of its neurons are used.

After each training experience this Avalanche plugin metric runs the network on a fixed sample of
test images of the experiences seen so far (at most ``max_images``, spread evenly over them, so a
long stream's later experiences cost no more than its first ones), each with its true label, and
logs per block:

* ``Activation_Sparsity/block{i}``: the mean fraction of the block's units that are zero for an
  image (k-WTA keeps 2k of 2 x units/2 in SFFA, so ~1 - 2k/units; a dense ReLU layer ~0.5);
* ``Neuron_Usage/block{i}``: the fraction of units that fire for at least one of the images
  (dead or unallocated neurons lower it).

Networks that are not FF networks (the back-propagation baselines) are skipped. The values of every
experience are kept in :attr:`BlockActivity.history` (written to metrics.json by the runner).
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from ..nn.ff import FFNet
from .anytime import eval_mode, seen_test_data

__all__ = ["BlockActivity", "block_activity"]


@torch.no_grad()
def block_activity(model: FFNet, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, float]]:
    """Per block: ``sparsity`` (mean fraction of zero units per image) and ``usage`` (fraction of
    units active for any image), for images ``x`` with their true labels ``y``."""
    acts = model.activities(x, y[:, None])  # [B, 1, units] per block
    return [
        {"sparsity": float((a == 0).float().mean()), "usage": float((a > 0).any(dim=0).any(dim=0).float().mean())}
        for a in acts
    ]


class BlockActivity(PluginMetric[list]):
    """Activation sparsity and neuron usage per block after each training experience.

    :param tests: per test experience, ``(x, y)`` tensors (a few hundred images each is plenty).
    :param max_images: the most images measured after an experience: the first
        ``max_images // seen`` of each seen experience's (all of them while that is more).
    """

    def __init__(self, tests: list[tuple[torch.Tensor, torch.Tensor]], max_images: int = 1000) -> None:
        super().__init__()
        self.tests, self.max_images = tests, max_images
        self.history: list[list[dict[str, float]]] = []

    def reset(self) -> None:
        self.history = []

    def result(self) -> list | None:
        return self.history[-1] if self.history else None

    def after_training_exp(self, strategy: Any) -> list[MetricValue] | None:
        model = strategy.model
        if not isinstance(model, FFNet) or not self.tests:
            return None
        exp = strategy.experience
        seen = int(getattr(exp, "origin_experience", exp).current_experience) + 1
        per = max(1, self.max_images // seen)
        x, y = seen_test_data([(tx[:per], ty[:per]) for tx, ty in self.tests[:seen]], seen)
        with eval_mode(model):
            stats = block_activity(model, x.to(strategy.device), y.to(strategy.device))
        if getattr(exp, "is_last_subexp", True):  # online mini-experiences: once per experience
            self.history.append(stats)
        step = strategy.clock.train_iterations
        return [MetricValue(self, f"{name}/block{i}", s[key], step)
                for i, s in enumerate(stats) for name, key in (("Activation_Sparsity", "sparsity"), ("Neuron_Usage", "usage"))]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "tests": []}  # the runner re-attaches the test data on resume

    def __str__(self) -> str:
        return "BlockActivity"
