"""Dimensionality compression (Zhu, Qi, Ma, Lu, Feng, NeurIPS 2025; seeds/003; algorithms.md section 5).

A block sees N noisy copies of each input. Its goodness is built from the effective dimensionality
(participation ratio) of its responses, ED(M) = tr(M)^2 / ||M||_F^2 for the uncentred second moment
M = Y^T Y / (n - 1): the responses to the copies of one image should span few dimensions
(consistency, ED_cons, minimised) while the copy-averaged responses of different images span many
(diversity, ED_div, maximised). L = 0.5 ED_cons - 0.5 ED_div: no negatives and no labels, so a
block can learn from the images of a single class.
"""

from __future__ import annotations

import torch

from .base import Objective, register_objective

__all__ = ["DimensionalityCompression", "effective_dimensionality"]


def effective_dimensionality(y: torch.Tensor) -> torch.Tensor:
    """ED of responses y [..., n, d]: (sum of eigenvalues)^2 / sum of squared eigenvalues of y^T y / (n-1).

    y^T y [d, d] and y y^T [n, n] share their nonzero eigenvalues, so the smaller one is formed
    (n copies at one position of a conv block: 10x10 instead of d x d)."""
    n = max(y.shape[-2] - 1, 1)
    m = (y @ y.transpose(-1, -2) if y.shape[-2] < y.shape[-1] else y.transpose(-1, -2) @ y) / n
    return torch.diagonal(m, dim1=-2, dim2=-1).sum(-1).pow(2) / m.pow(2).sum((-2, -1)).clamp(min=1e-12)


@register_objective("dimcomp")
class DimensionalityCompression(Objective):
    """``loss(h)`` takes the (projected) responses of one block to N noisy copies, h [B, N, d], or
    of a conv block at S positions, h [B, N, S, d]: consistency is then measured over the N copies
    at each position of each image, diversity over the B*S copy-averaged responses.

    The authors' conv form measures consistency per image over all N*S responses (algorithms.md
    section 5). Here that drove the conv blocks to silence: the share of active units fell from 47%
    to 5% over 40 epochs on digits, and a joint-MNIST run ended at 9.8% (chance; docs/conv.md).
    Over the copies alone, at each position, the share settles near 29% and the run learns."""

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        return h.pow(2).mean(-1)  # output energy, the paper's prediction rule

    def loss(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if h.dim() == 3:
            h = h[:, :, None]
        consistency = effective_dimensionality(h.transpose(1, 2)).mean()  # per image and position, over the copies
        diversity = effective_dimensionality(h.mean(1).flatten(0, 1))  # over the batch (and positions), copy-averaged
        return 0.5 * consistency - 0.5 * diversity
