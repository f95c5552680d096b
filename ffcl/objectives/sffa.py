"""SFFA, the Symmetric Forward-Forward objective (Terres-Escudero et al., CoLLAs 2024; seeds/002;
algorithms.md section 3).

Each layer's units are split into positive neurons P (first half) and negative neurons N. The
fitness is g = ||h_P||^2 / (||h_P||^2 + ||h_N||^2), clamped to [1e-4, 1 - 1e-4]; there is no
threshold. The symmetric loss is the binary cross-entropy L = -mean log g(x, y) - mean log(1 -
g(x, y_bar)), multiplied by the anti-collapse factor (1 + exp(-10 (mean h+ + mean h-))), which
rises to 2 as activity vanishes (the authors' ``ProbabilityBCELoss``).
"""

from __future__ import annotations

import torch

from .base import Objective, register_objective

EPS = 1e-4


@register_objective("sffa")
class SFFA(Objective):
    sums_over_units = True

    def __init__(self, collapse_weight: float = 10.0) -> None:
        super().__init__()
        self.collapse_weight = collapse_weight

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        half = h.shape[-1] // 2
        sq = h.pow(2)
        pos = sq[..., :half].sum(-1)
        return ((pos + 1e-9) / (sq.sum(-1) + 2e-9)).clamp(EPS, 1 - EPS)

    def loss(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        g = self.goodness(h)
        bce, activity = -g[:, 0].log().mean(), h[:, 0].mean()
        if h.shape[1] > 1:
            bce, activity = bce - (1 - g[:, 1:]).log().mean(), activity + h[:, 1:].mean()
        return bce * (1 + torch.exp(-self.collapse_weight * activity))

    def negative_loss(self, h: torch.Tensor) -> torch.Tensor:
        return -(1 - self.goodness(h)).log().mean() * (1 + torch.exp(-self.collapse_weight * h.mean()))
