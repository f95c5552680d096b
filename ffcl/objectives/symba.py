"""SymBa loss (Lee and Song 2023), used by the Trifecta (Dooms et al. 2023; seeds/001; algorithms.md section 2a).

The positive and the negative share the same image; with Delta = G(x, y) - G(x, y_bar) and G the
mean squared activity, L = softplus(-alpha Delta), alpha = 4: a symmetric loss with no threshold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, register_objective


@register_objective("symba")
class SymBa(Objective):
    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__()
        self.alpha = alpha

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        return h.pow(2).mean(-1)

    def loss(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if h.shape[1] < 2:  # no negative to contrast with
            return h.sum() * 0
        g = self.goodness(h)
        if context is not None:
            g = g + context
        return F.softplus(-self.alpha * (g[:, :1] - g[:, 1:])).mean()
