"""Data augmentation as a plugin a recipe can add (``[plugins.shift]``).

ffcl trains from tensors resident on the device (``ffcl.data.loaders``), so per-sample torchvision
transforms never run; this plugin augments each training minibatch as a tensor instead, on the
device, for any learner.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin

from ..config import ConfigError
from .registry import BuildContext, register_plugin

__all__ = ["RandomShift", "random_shift"]


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image [B, C, H, W] translated by its own random whole-pixel offset in
    [-max_shift, max_shift] along each axis, the uncovered border filled with zeros."""
    b, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    dy, dx = (torch.randint(0, 2 * s + 1, (b,), generator=generator).to(x.device) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(b, x.shape[1], h, w + 2 * s)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(b, x.shape[1], h, w)
    return out.gather(3, cols)


class RandomShift(SupervisedPlugin):
    """Translate every training image by up to ``max_shift`` pixels (the classic MNIST augmentation)."""

    def __init__(self, max_shift: int = 2) -> None:
        super().__init__()
        self.max_shift = max_shift

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        if strategy.is_training and strategy.mb_x.dim() == 4:
            strategy.mbatch[0] = random_shift(strategy.mb_x, self.max_shift)


@register_plugin("shift")
def shift(ctx: BuildContext, max_shift: int = 2) -> RandomShift:
    """Random translations of up to ``max_shift`` pixels of every training image."""
    if max_shift < 1:
        raise ConfigError(f"plugin 'shift': 'max_shift' must be >= 1, got {max_shift}")
    return RandomShift(max_shift)
