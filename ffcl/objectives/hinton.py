"""Hinton's FF objective (Hinton 2022, "The Forward-Forward Algorithm"; algorithms.md section 1).

Goodness is the sum of squared activities, G = sum_j h_j^2, and p(positive) = sigmoid(G - theta).
Per layer, L = softplus(theta - G(x, y)) + softplus(G(x, y_bar) - theta). As in loeweX's faithful
reimplementation, theta equals the layer width D (RMS-normalised activity has sum of squares D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, register_objective


@register_objective("hinton")
class HintonFF(Objective):
    def __init__(self, theta: float | None = None) -> None:
        super().__init__()
        self.theta = theta

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        return h.pow(2).sum(-1)

    def loss(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        theta = h.shape[-1] if self.theta is None else self.theta
        g = self.goodness(h) - theta
        if context is not None:
            g = g + context
        loss = F.softplus(-g[:, 0]).mean()
        return loss + F.softplus(g[:, 1:]).mean() if h.shape[1] > 1 else loss

    def negative_loss(self, h: torch.Tensor) -> torch.Tensor:
        theta = h.shape[-1] if self.theta is None else self.theta
        return F.softplus(self.goodness(h) - theta).mean()
