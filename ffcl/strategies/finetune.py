"""Class-balanced fine-tuning on the replay buffer after each experience.

Replay trains on far more samples of the current classes than of the old ones, so the classes of
the last experience win too often (recency bias). After each experience, and after the replay
buffer has taken in its samples, this plugin trains a few more epochs on the class-balanced
buffer alone, at a small learning rate: the balanced fine-tuning of End-to-End Incremental
Learning (Castro et al., ECCV 2018, section 3.3). It runs the strategy's own training epoch, so
every other plugin (neuron allocation, EWC) acts on these steps as on any other.
"""

from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import ReplayPlugin

from ..config import ConfigError
from ..data.loaders import TensorLoader, dataset_tensors
from .registry import BuildContext, register_plugin
from .schedules import CosineLR

__all__ = ["BalancedFinetune"]


class BalancedFinetune(SupervisedPlugin):
    """Fine-tune on the replay buffer for ``epochs`` epochs at learning rate ``lr`` after each experience.

    Needs a replay plugin listed *before* it (its buffer must be updated first; with a
    class-balanced buffer the fine-tuning is balanced), and must come after any learning-rate
    schedule (it sets the rate of its steps).
    """

    def __init__(self, lr: float, epochs: int = 1, batch_size: int | None = None) -> None:
        super().__init__()
        if epochs < 1 or lr <= 0:
            raise ConfigError(f"plugin 'balanced_finetune': need epochs >= 1 and lr > 0, got epochs={epochs}, lr={lr}")
        self.lr, self.epochs, self.batch_size = lr, epochs, batch_size
        self.active = False

    def _replay(self, strategy: Any) -> ReplayPlugin:
        plugins = list(strategy.plugins)
        mine = plugins.index(self)
        replay = [i for i, p in enumerate(plugins) if isinstance(p, ReplayPlugin)]
        if not replay or replay[0] > mine or any(isinstance(p, CosineLR) for p in plugins[mine:]):
            raise ConfigError("plugin 'balanced_finetune' fine-tunes on the replay buffer: list it after "
                              "[plugins.replay] and after any [plugins.cosine_lr] in the recipe")
        return plugins[replay[0]]

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        self._replay(strategy)

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        if self.active:
            for group in strategy.optimizer.param_groups:
                group["lr"] = self.lr

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if not getattr(strategy.experience, "is_last_subexp", True):  # online: once, at the end of the origin experience
            return
        buffer = self._replay(strategy).storage_policy.buffer
        if len(buffer) == 0:
            return
        saved = strategy.dataloader, [g["lr"] for g in strategy.optimizer.param_groups]
        strategy.dataloader = TensorLoader(dataset_tensors(buffer, strategy.device), self.batch_size or strategy.train_mb_size)
        self.active = True
        try:
            for _ in range(self.epochs):
                strategy.training_epoch()
        finally:
            self.active = False
            strategy.dataloader = saved[0]
            for group, lr in zip(strategy.optimizer.param_groups, saved[1]):
                group["lr"] = lr


@register_plugin("balanced_finetune")
def balanced_finetune(ctx: BuildContext, epochs: int = 1, lr_scale: float = 0.1, batch_size: int | None = None) -> BalancedFinetune:
    """Class-balanced fine-tuning on the replay buffer after each experience, at ``lr_scale`` times the recipe's rate."""
    return BalancedFinetune(lr=ctx.config.lr * lr_scale, epochs=epochs, batch_size=batch_size)
