"""Distance-Forward, DF (Wu et al. 2024, arXiv 2408.14925; seeds/000; algorithms.md section 4).

DF reads FF as centroid-based metric learning: with the label code at the input, a layer computes
W_x x + W_e e_c = f(x) + mu_c, so the goodness of the pass conditioned on label c ranks classes by
how close the image's features lie to class c's centroid. The goodness-based N-pair margin loss
contrasts the positive with several negatives at once:

    L = log(1 + sum_{c != y} exp(gamma (s_c - s_y + m)))            (N-pair margin, one anchor)

with s the mean squared activity of the layer, gamma = 4 and m = 0.5 (algorithms.md proposal; the
paper's exact loss is not public, see docs/learners.md for the alternatives measured).
Layer collaboration (Lorberbom et al. 2024, the local form of DF's "layer-collaboration local
updates"): each layer's scores are added to the *detached* scores of the other layers before the
loss, so every layer learns what the whole network still gets wrong while no gradient leaves it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Objective, register_objective


@register_objective("distance")
class DistanceNPair(Objective):
    def __init__(self, gamma: float = 4.0, margin: float = 0.5) -> None:
        super().__init__()
        self.gamma = gamma
        self.margin = margin

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        return h.pow(2).mean(-1)

    def loss(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if h.shape[1] < 2:  # no negative to contrast with
            return h.sum() * 0
        s = self.goodness(h)
        if context is not None:
            s = s + context
        diff = self.gamma * (s[:, 1:] - s[:, :1] + self.margin)
        # log(1 + sum exp(d)) = logsumexp([0, d...])
        return torch.logsumexp(F.pad(diff, (1, 0)), dim=1).mean()


@register_objective("centroid")
class CentroidDistance(DistanceNPair):
    """DF's centroid reading in its one-pass form (algorithms.md section 4, proposal): ``h`` holds,
    per class c, the displacement of the layer-normalised features from class c's learned centroid,
    LN(h_l) - mu_{l,c}, and the goodness is minus its mean square, s_c = -||LN(h_l) - mu_{l,c}||^2 / D,
    so the nearest centroid scores highest; the N-pair margin loss is DF's, as above."""

    def goodness(self, h: torch.Tensor) -> torch.Tensor:
        return -h.pow(2).mean(-1)
