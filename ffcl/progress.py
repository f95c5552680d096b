"""A progress bar over the minibatches of each training experience (tqdm), as an Avalanche plugin."""

from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin
from tqdm.auto import tqdm

__all__ = ["ProgressPlugin"]


class ProgressPlugin(SupervisedPlugin):
    """Shows one transient bar per training experience: iterations over all its epochs.

    Avalanche's InteractiveLogger prints every metric after every evaluation; a run needs less
    noise than that, so ffcl prints one summary line per experience and this bar in between.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bar: Any = None

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        total = len(strategy.dataloader) * strategy.train_epochs
        exp = strategy.experience.current_experience
        self.bar = tqdm(total=total, desc=f"train exp {exp}", leave=False, unit="it")

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        # the loss is read (a host synchronisation on a GPU) only when tqdm redraws, a few times a second
        if self.bar is not None and self.bar.update(1):
            self.bar.set_postfix(loss=f"{strategy.loss.item():.3f}", refresh=False)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __getstate__(self) -> dict[str, Any]:  # a tqdm bar is not picklable (checkpoints)
        return {**self.__dict__, "bar": None}
