"""Hinton's FF objective (Hinton 2022, "The Forward-Forward Algorithm"; algorithms.md section 1).

Goodness is the sum of squared activities, G = sum_j h_j^2, and p(positive) = sigmoid(G - theta).
Per layer, L = softplus(theta - G(x, y)) + softplus(G(x, y_bar) - theta). ``theta=None`` is
loeweX's choice, the layer width D (his inputs are RMS-normalised, so activity starts near D); with
ffcl's raw [0, 1] images and PyTorch's default initialisation a layer's goodness starts far below D
and a threshold of D stalls learning (docs/learners.md: 36% after one MNIST epoch, 92% with 30).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, register_objective


@register_objective("hinton")
class HintonFF(Objective):
    sums_over_units = True

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
