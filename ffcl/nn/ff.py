"""Forward-Forward networks: stacks of local blocks that take the label as input.

Each block sees the normalised, *detached* output of the block below (so no gradient crosses a
block boundary and the block cannot read the goodness of the one below), optionally the image
itself (SFFA's residual input), and the code of a candidate label. The input projection is
factorised, W [h; x; code_c] = W_h h + W_x x + W_c code_c, so the image projection is computed
once per image and shared by the positive, the negatives and every inference candidate; the
code projection is one row of a [classes, units] table. Candidates are stacked into the batch:
activities have shape [batch, candidates, units] and inference over C labels is one tensor pass.

Label codes are pre-allocated for ``max_classes`` labels, so new classes need no change to the
network (algorithms.md section 9). Which classes are candidates at inference is the buffer
``active``: in class-incremental streams, only the classes seen so far.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..objectives import Objective

__all__ = ["FFBlock", "FFNet", "label_codes", "rms_normalize", "kwta"]

NEG = -1e9  # class score of an inactive (never seen) label


def label_codes(max_classes: int, kind: str = "random", dim: int = 100, p: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Fixed label codes [max_classes, dim]: one-hot (Hinton) or random binary with P(1)=p (SFFA)."""
    if kind == "onehot":
        return torch.eye(max_classes)
    if kind == "random":
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(max_classes, dim, generator=g) < p).float()
    raise ValueError(f"label code must be 'onehot' or 'random', got '{kind}'")


def rms_normalize(h: torch.Tensor, split: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """h / sqrt(mean h^2): removes the magnitude (the goodness), keeps the direction.

    With ``split`` each half (positive and negative neurons) is normalised on its own, which is
    what the SFFA code intends (its version indexes batch rows by mistake, algorithms.md sec. 3).
    """
    if split:
        a, b = h.chunk(2, dim=-1)
        return torch.cat([rms_normalize(a, eps=eps), rms_normalize(b, eps=eps)], dim=-1)
    return h / (h.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def kwta(h: torch.Tensor, k: int, split: bool = False) -> torch.Tensor:
    """k-winners-take-all: keep the k largest units (per half with ``split``), zero the rest."""
    if split:
        a, b = h.chunk(2, dim=-1)
        return torch.cat([kwta(a, k), kwta(b, k)], dim=-1)
    if k >= h.shape[-1]:
        return h
    threshold = h.topk(k, dim=-1).values[..., -1:]
    return h * (h >= threshold)


class FFBlock(nn.Module):
    """One local block: h = kWTA(ReLU(W_h n(h_prev) + W_x x + W_c code_c + b))."""

    def __init__(self, prev_dim: int, input_dim: int, code_dim: int, units: int, *, k: int | None = None, split: bool = False) -> None:
        super().__init__()
        if split and units % 2:
            raise ValueError(f"a block split into positive and negative neurons needs an even width, got {units}")
        fan_in = prev_dim + input_dim + code_dim
        bound = 1 / math.sqrt(fan_in)  # the same init as one nn.Linear over the concatenated input
        self.prev = nn.Parameter(torch.empty(units, prev_dim).uniform_(-bound, bound)) if prev_dim else None
        self.inp = nn.Parameter(torch.empty(units, input_dim).uniform_(-bound, bound)) if input_dim else None
        self.code = nn.Parameter(torch.empty(units, code_dim).uniform_(-bound, bound)) if code_dim else None
        self.bias = nn.Parameter(torch.empty(units).uniform_(-bound, bound))
        self.units, self.k, self.split = units, k, split

    def forward(self, x: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor, h_prev: torch.Tensor | None) -> torch.Tensor:
        """x [B, Din], codes [classes, Dc], labels [B, K], h_prev [B, K, Dp] (normalised, detached) -> [B, K, units]."""
        z = self.bias.expand(labels.shape[0], labels.shape[1], self.units)
        if self.inp is not None:
            z = z + (x @ self.inp.T).unsqueeze(1)
        if self.code is not None:
            z = z + (codes @ self.code.T)[labels]
        if self.prev is not None:
            z = z + h_prev @ self.prev.T
        h = torch.relu(z)
        return kwta(h, self.k, self.split) if self.k else h


class FFNet(nn.Module):
    """A stack of :class:`FFBlock` trained by a layer-local :class:`Objective`.

    ``forward(x)`` returns class scores [B, max_classes] (goodness summed over ``score_layers``,
    inactive classes at -1e9), so Avalanche's metrics and loggers work unchanged.
    ``activities(x, labels)`` returns each block's activity for each candidate label, the
    input of the local losses.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        hidden: list[int],
        max_classes: int,
        objective: Objective,
        *,
        code: str = "random",
        code_dim: int = 100,
        code_p: float = 0.1,
        residual: bool = True,
        split: bool = False,
        k: int | None = None,
        skip_first_in_score: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim = math.prod(input_shape)
        self.objective = objective
        self.register_buffer("codes", label_codes(max_classes, code, code_dim, code_p, seed))
        self.register_buffer("active", torch.zeros(max_classes, dtype=torch.bool))
        cdim = self.codes.shape[1]
        blocks = []
        prev = 0
        for i, units in enumerate(hidden):
            sees_input = residual or i == 0
            blocks.append(FFBlock(prev, self.input_dim if sees_input else 0, cdim if sees_input else 0, units, k=k, split=split))
            prev = units
        self.blocks = nn.ModuleList(blocks)
        self.split = split
        self.score_layers = list(range(1 if skip_first_in_score and len(hidden) > 1 else 0, len(hidden)))
        self.max_rows = 1024  # candidate rows per inference chunk (larger chunks thrash the CPU cache)

    @property
    def max_classes(self) -> int:
        return self.codes.shape[0]

    def activate(self, classes: torch.Tensor) -> None:
        """Mark classes as seen: they become inference candidates and negatives."""
        self.active[classes.unique()] = True

    def active_classes(self) -> torch.Tensor:
        return self.active.nonzero().flatten()

    def next_input(self, h: torch.Tensor) -> torch.Tensor:
        """What the next block sees: the normalised activity, detached (no gradient crosses blocks)."""
        return rms_normalize(h, self.split).detach()

    def activities(self, x: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
        """Each block's activity [B, K, units] for images x and candidate labels [B, K]."""
        x = x.flatten(1)
        out, h = [], None
        for block in self.blocks:
            a = block(x, self.codes, labels, h)
            out.append(a)
            h = self.next_input(a)
        return out

    def goodness(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Per-layer goodness [B, K, L] of a list of activities."""
        return torch.stack([self.objective.goodness(a) for a in acts], dim=-1)

    def scores(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Candidate scores [B, K]: goodness summed over the scoring layers."""
        return self.goodness(self.activities(x, labels))[..., self.score_layers].sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = self.active_classes()
        out = torch.full((x.shape[0], self.max_classes), NEG, device=x.device, dtype=x.dtype)
        if len(classes) == 0:
            return out
        chunk = max(1, self.max_rows // len(classes))
        for i in range(0, x.shape[0], chunk):
            xb = x[i : i + chunk]
            out[i : i + chunk, classes] = self.scores(xb, classes.expand(xb.shape[0], -1))
        return out
