"""Forward-Forward networks: stacks of local blocks that take the label as input.

Each block sees the normalised, *detached* output of the block below (so no gradient crosses a
block boundary and the block cannot read the goodness of the one below), optionally the image
itself (SFFA's residual input), and the code of a candidate label. The input projection is
factorised, W [h; x; code_c] = W_h h + W_x x + W_c code_c, so the image projection is computed
once per image and shared by the positive, the negatives and every inference candidate; the
code projection is one row of a [classes, units] table. Candidates are stacked into the batch:
activities have shape [batch, candidates, units] and inference over C labels is one tensor pass.

``code_scale`` multiplies the codes: on images with many bright pixels (Fashion-MNIST) a 0/1 code
of ~10 ones is drowned by the image projection, and a larger amplitude lets the label steer the
layer (measured in docs/results.md). ``standardize_input`` standardises each image (zero mean, unit
variance over its pixels) before it enters any block, so the balance between image and label code
no longer depends on how bright the image is. Label codes are pre-allocated for ``max_classes`` labels, so new classes need no change to the
network (algorithms.md section 9). Which classes are candidates at inference is the buffer
``active``: in class-incremental streams, only the classes seen so far.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives import Objective

__all__ = ["FFBlock", "FFNet", "label_codes", "rms_normalize"]

NEG = -1e9  # class score of an inactive (never seen) label


def label_codes(max_classes: int, kind: str = "random", dim: int = 100, p: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Fixed label codes [max_classes, dim]: one-hot (Hinton) or random binary with P(1)=p (SFFA)."""
    if kind == "onehot":
        return torch.eye(max_classes)
    if kind == "random":
        g = torch.Generator().manual_seed(seed)
        return (torch.rand(max_classes, dim, generator=g) < p).float()
    raise ValueError(f"label code must be 'onehot' or 'random', got '{kind}'")


def _parts(h: torch.Tensor, split: bool) -> torch.Tensor:
    """View [..., D] as [..., parts, D/parts]: two halves (positive, negative neurons) with ``split``."""
    return h.view(*h.shape[:-1], 2, h.shape[-1] // 2) if split else h.unsqueeze(-2)


def rms_normalize(h: torch.Tensor, split: bool = False, eps: float = 1e-6) -> torch.Tensor:
    """h / sqrt(mean h^2): removes the magnitude (the goodness), keeps the direction.

    With ``split`` each half (positive and negative neurons) is normalised on its own, which is
    what the SFFA code intends (its version indexes batch rows by mistake, algorithms.md sec. 3).
    """
    p = _parts(h, split)
    return (p / (p.pow(2).mean(-1, keepdim=True) + eps).sqrt()).view(h.shape)


def standardize_images(x: torch.Tensor) -> torch.Tensor:
    """Each image [B, ...] to zero mean and unit variance over its pixels (shape kept)."""
    flat = x.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-6)).view_as(x)


def topk_last(p: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``p.topk(k, dim=-1)`` (values, indices; the order of the k may differ), ~1.6x faster on CPU
    for k-WTA sizes: the last dim is cut into chunks of d units; the k winners lie in the k chunks
    with the largest maxima (a chunk whose maximum ranks below k holds no winner), so only those
    k*d units are ranked. d is the divisor of the width nearest sqrt(width / k)."""
    n = p.shape[-1]
    d = min((c for c in range(2, n // k + 1) if n % c == 0), key=lambda c: abs(c * c * k - n), default=1)
    if d == 1:
        return p.topk(k, dim=-1)
    chunks = p.view(*p.shape[:-1], n // d, d)
    best = chunks.amax(-1).topk(k, dim=-1).indices  # [..., k]: the chunks holding the winners
    vals, j = chunks.gather(-2, best[..., None].expand(*best.shape, d)).flatten(-2).topk(k, dim=-1)
    return vals, best.gather(-1, j // d) * d + j % d


Below = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None
"""What a block receives from the block below: nothing (the first block), the normalised activity
[B, K, Dp], or, below a k-WTA block, its normalised winners as (indices, values), each [B*K, nnz]."""


class FFBlock(nn.Module):
    """One local block: h = kWTA(ReLU(n(h_prev) W_h + x W_x + code_c W_c + b)).

    Weights are stored input-major ([in, units]) so a sparse input (the k winners of the block
    below) is a weighted sum of weight rows: ``F.embedding_bag``, no dense product.

    ``boost`` > 0 turns on k-WTA boosting (Ahmad & Scheinkman 2019, "How can we be so dense?"):
    each unit's duty cycle d_i (how often it wins on positive passes, a running mean) sets a gain
    exp(boost * (t - d_i) / t), with t = k / width the target density, and the winners are the
    k largest of h * gain (in training and at inference). Units that rarely win are favoured, so
    more of the layer is used. The training step updates the duty cycles (:meth:`update_duty`).
    """

    boost: float = 0.0  # class defaults: blocks pickled before these options existed still load

    def __init__(
        self, prev_dim: int, input_dim: int, code_dim: int, units: int, *,
        k: int | None = None, split: bool = False, boost: float = 0.0,
    ) -> None:
        super().__init__()
        if split and units % 2:
            raise ValueError(f"a block split into positive and negative neurons needs an even width, got {units}")
        fan_in = prev_dim + input_dim + code_dim
        bound = 1 / math.sqrt(fan_in)  # the same init as one nn.Linear over the concatenated input

        def weight(n: int) -> nn.Parameter | None:
            return nn.Parameter(torch.empty(n, units).uniform_(-bound, bound)) if n else None

        self.prev, self.inp, self.code = weight(prev_dim), weight(input_dim), weight(code_dim)
        self.bias = nn.Parameter(torch.empty(units).uniform_(-bound, bound))
        self.units, self.k, self.split = units, k, split
        self.register_buffer("owner", None)  # class owning each unit (-1: free); set by ffcl.allocation
        self.boost = boost
        self.register_buffer("duty", torch.full((units,), self.density))  # win rate on positives (boosting)

    @property
    def density(self) -> float:
        """The fraction of units (per half) that win the k-WTA: k / width."""
        return min(1.0, self.k / (self.units // self.parts)) if self.k else 1.0

    @torch.no_grad()
    def update_duty(self, h_pos: torch.Tensor, rate: float = 0.01) -> None:
        """Move the duty cycles towards the win rate of positive activities h_pos [B, units]
        (called by the training step once per minibatch; a no-op without boosting)."""
        if self.boost and self.k:
            self.duty.lerp_((h_pos > 0).float().mean(0), rate)

    def gain(self) -> torch.Tensor | None:
        """Each unit's boosting factor for the k-WTA ranking (None without boosting)."""
        if not (self.boost and self.k):
            return None
        return torch.exp(self.boost * (1 - self.duty / self.density))

    def mask(self, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """With neuron allocation, the pass for label c keeps only the units class c owns."""
        return h if self.owner is None else h * (self.owner == labels[..., None])

    @property
    def parts(self) -> int:
        return 2 if self.split else 1

    @property
    def sparse(self) -> bool:
        """Whether k-WTA keeps fewer than all units of each part (then only the winners are passed on)."""
        return bool(self.k) and self.k < self.units // self.parts

    def preactivation(self, x: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor, below: Below = None) -> torch.Tensor:
        """z [B, K, units] for x [B, Din], labels [B, K] and what the block below passed on (:data:`Below`):
        a sparse input is a weighted sum of k weight rows per row (``F.embedding_bag``), no dense product."""
        b, k = labels.shape
        z = self.bias if self.inp is None else torch.addmm(self.bias, x, self.inp)[:, None, :]  # [units] or [B, 1, units]
        if self.code is not None:
            table = codes @ self.code
            if labels.stride(0) == 0:  # candidates shared by every image (inference): one row per class, broadcast
                z = z + table[labels[0]]
            else:  # embedding: a fast backward; adding in place spares a [B, K, units] temporary
                z = F.embedding(labels, table).add_(z)
        if isinstance(below, tuple):  # the sparse input's sum, with the rest added in place (no expanded copy)
            idx, vals = below
            return F.embedding_bag(idx, self.prev, per_sample_weights=vals, mode="sum").view(b, k, self.units).add_(z)
        if below is not None:
            return torch.addmm(z if z.dim() == 1 else z.expand(b, k, self.units).reshape(b * k, self.units),
                               below.reshape(b * k, -1), self.prev).view(b, k, self.units)
        return z.expand(b, k, self.units).reshape(b, k, self.units)

    def activation(self, x: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor, below: Below = None) -> torch.Tensor:
        """ReLU of the preactivation, masked to the units each label owns (before k-WTA)."""
        return self.mask(self.preactivation(x, codes, labels, below).relu_(), labels)  # in place: z is a fresh tensor

    def winners(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k-winners-take-all of activities z [B, K, units]: the k largest units per part as
        (values, indices), each [B, K, parts, k]; with boosting, ranked by z * gain (values unboosted)."""
        p = z.view(*z.shape[:-1], self.parts, -1)
        gain = self.gain()
        if gain is None:
            return topk_last(p, self.k)
        idx = topk_last((z * gain).view_as(p), self.k)[1]
        return p.gather(-1, idx), idx

    def pass_on(self, vals: torch.Tensor, idx: torch.Tensor, detach: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The next block's input from the winners: each part RMS-normalised over its whole width
        (exactly :func:`rms_normalize` of the k-WTA output), detached, as sparse (indices, values)."""
        width = self.units // self.parts
        vals = vals.detach() if detach else vals
        vals = vals / (vals.pow(2).sum(-1, keepdim=True) / width + 1e-6).sqrt()
        idx = idx + torch.arange(self.parts, device=idx.device)[:, None] * width
        return idx.reshape(-1, self.parts * self.k), vals.reshape(-1, self.parts * self.k)

    def forward(self, x: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor, below: Below = None,
                detach: bool = True) -> tuple[torch.Tensor, Below]:
        """x [B, Din], codes [classes, Dc], labels [B, K] -> (activity [B, K, units], what the next
        block receives: the normalised activity, detached so that no gradient crosses the boundary;
        ``detach=False`` lets the next block's loss reach this block, for overlapping updates)."""
        z = self.activation(x, codes, labels, below)
        if not self.sparse:
            nxt = rms_normalize(z, self.split)
            return z, nxt.detach() if detach else nxt
        vals, idx = self.winners(z)
        h = vals.new_zeros(*vals.shape[:-1], self.units // self.parts).scatter(-1, idx, vals)
        return h.view(z.shape), self.pass_on(vals, idx, detach)


def _keep(below: Below, keep: torch.Tensor, n: int) -> Below:
    """What a block passes on (:data:`Below`; rows [B*n, ...] or [B, n, ...]) for the candidates
    ``keep`` [B, k] (positions among the n) only."""
    if below is None or isinstance(below, tuple):
        return below if below is None else tuple(_keep(t, keep, n) for t in below)  # type: ignore[return-value]
    b, k = keep.shape
    rows = below.reshape(b, n, -1)
    kept = rows.gather(1, keep[..., None].expand(b, k, rows.shape[-1]))
    return kept.reshape(b * k, *below.shape[1:]) if below.shape[0] == b * n else kept.reshape(b, k, *below.shape[2:])


class FFNet(nn.Module):
    """A stack of :class:`FFBlock` trained by a layer-local :class:`Objective`.

    ``forward(x)`` returns class scores [B, max_classes] (goodness summed over ``score_layers``,
    inactive classes at -1e9), so Avalanche's metrics and loggers work unchanged.
    ``activities(x, labels)`` returns each block's activity for each candidate label, the
    input of the local losses.
    """

    standardize_input: bool = False  # class default: networks pickled before the option existed still load
    cascade: tuple[int, ...] = ()  # candidates kept after each block (:meth:`set_cascade`); empty: exhaustive
    shortlist: int = 0  # candidates that enter the first block (:meth:`set_shortlist`); 0: every one

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
        code_scale: float = 1.0,
        residual: bool = True,
        split: bool = False,
        k: int | None = None,
        boost: float = 0.0,
        skip_first_in_score: bool = False,
        standardize_input: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim = math.prod(input_shape)
        self.standardize_input = standardize_input
        self.objective = objective
        self.code_args = dict(kind=code, dim=code_dim, p=code_p, seed=seed)
        self.code_scale = code_scale
        self.register_buffer("codes", code_scale * label_codes(max_classes, **self.code_args))
        self.register_buffer("active", torch.zeros(max_classes, dtype=torch.bool))
        self.register_buffer("frozen", torch.zeros(max_classes, dtype=torch.bool))
        cdim = self.codes.shape[1]
        blocks = []
        prev = 0
        for i, units in enumerate(hidden):
            sees_input = residual or i == 0
            blocks.append(FFBlock(prev, self.input_dim if sees_input else 0, cdim if sees_input else 0, units, k=k, split=split, boost=boost))
            prev = units
        self.blocks = nn.ModuleList(blocks)
        self.split = split
        self.score_layers = list(range(1 if skip_first_in_score and len(hidden) > 1 else 0, len(hidden)))
        self.max_rows = 1024  # candidate rows per inference chunk (larger chunks thrash the CPU cache)

    @property
    def max_classes(self) -> int:
        return self.codes.shape[0]

    def grow(self, num_classes: int) -> None:
        """Make room for labels up to ``num_classes - 1`` (for data that brings new classes later).

        Random codes are drawn row by row from the same seed, so the old classes keep their codes;
        one-hot codes widen, and each block's code weights gain fresh rows for the new labels.
        """
        old = self.max_classes
        if num_classes <= old:
            return
        device = self.codes.device
        self.codes = self.code_scale * label_codes(num_classes, **self.code_args).to(device)
        self.active = torch.cat([self.active, self.active.new_zeros(num_classes - old)])
        self.frozen = torch.cat([self.frozen, self.frozen.new_zeros(num_classes - old)])
        self._grow_input_means(num_classes)
        if self.code_args["kind"] != "onehot":
            return
        for block in self.blocks:
            if block.code is not None:
                bound = 1 / math.sqrt(sum(w.shape[0] for w in (block.prev, block.inp, block.code) if w is not None))
                extra = torch.empty(num_classes - old, block.units, device=device).uniform_(-bound, bound)
                block.code = nn.Parameter(torch.cat([block.code.detach(), extra]))

    def activate(self, classes: torch.Tensor) -> None:
        """Mark classes as seen: they become inference candidates and negatives."""
        self.active[classes] = True  # repeated labels are fine, and no unique(): no host synchronisation on a GPU

    def active_classes(self) -> torch.Tensor:
        return self.active.nonzero().flatten()

    def trainable_classes(self) -> torch.Tensor:
        """Seen classes whose neurons still learn (all seen classes unless allocation froze some)."""
        return (self.active & ~self.frozen).nonzero().flatten()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, ...] as the blocks see them: flattened, and standardised per image with ``standardize_input``."""
        x = x.flatten(1)
        return standardize_images(x) if self.standardize_input else x

    def activities(self, x: torch.Tensor, labels: torch.Tensor, detach: list[bool] | None = None,
                   depth: int | None = None) -> list[torch.Tensor]:
        """Each block's activity [B, K, units] for images x and candidate labels [B, K]; ``detach[i]``
        False passes block i's output on with its graph (default: every output detached). Only the
        first ``depth`` blocks run when it is given."""
        x = self.encode(x)
        out, below = [], None
        for i, block in enumerate(self.blocks[:depth]):
            a, below = block(x, self.codes, labels, below, detach=True if detach is None else detach[i])
            out.append(a)
        return out

    def goodness(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Per-layer goodness [B, K, L] of a list of activities."""
        return torch.stack([self.objective.goodness(a) for a in acts], dim=-1)

    def set_cascade(self, cascade: tuple[int, ...] | list[int]) -> None:
        """Score candidates through a cascade: after block i keep the ``cascade[i]`` best candidates
        (by the score accumulated so far) and run the deeper blocks on those alone; empty: every
        candidate through every block (exhaustive, exact). ValueError for values a net cannot use."""
        cascade = tuple(cascade)
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in cascade):
            raise ValueError(f"cascade values are candidates kept after each block and must be integers >= 1, got {list(cascade)}")
        if len(cascade) >= len(self.blocks):
            raise ValueError(f"cascade gives the candidates kept after each block but the last: a net of {len(self.blocks)} "
                             f"block(s) takes at most {len(self.blocks) - 1} value(s), got {list(cascade)}")
        self.cascade = cascade

    def set_shortlist(self, shortlist: int) -> None:
        """Let only the ``shortlist`` candidates whose class mean of the input (as the blocks see it,
        :meth:`encode`) lies nearest the image enter the first block; 0: every candidate. The class
        means are exact streaming statistics of the training images (:meth:`observe`), kept in
        buffers (``input_sum``, ``input_count``: the input size plus one number per class), so they
        never go stale and need no stored image. ValueError for a value a net cannot use."""
        if isinstance(shortlist, bool) or not isinstance(shortlist, int) or shortlist < 0:
            raise ValueError(f"shortlist is the number of candidates that enter the first block, an integer >= 0 (0: all), got {shortlist!r}")
        self.shortlist = shortlist
        if shortlist and not hasattr(self, "input_sum"):
            device = self.active.device
            self.register_buffer("input_sum", torch.zeros(self.max_classes, self.input_dim, device=device))
            self.register_buffer("input_count", torch.zeros(self.max_classes, device=device))

    def _grow_input_means(self, num_classes: int) -> None:
        if hasattr(self, "input_sum") and len(self.input_count) < num_classes:
            extra = num_classes - len(self.input_count)
            self.input_sum = torch.cat([self.input_sum, self.input_sum.new_zeros(extra, self.input_sum.shape[1])])
            self.input_count = torch.cat([self.input_count, self.input_count.new_zeros(extra)])

    @torch.no_grad()
    def observe(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Merge training images x with labels y into the class means of the input (a no-op without a shortlist)."""
        if self.shortlist:
            self.input_sum.index_add_(0, y, self.encode(x).flatten(1).to(self.input_sum.dtype))
            self.input_count.index_add_(0, y, torch.ones_like(y, dtype=self.input_count.dtype))

    def shortlist_key(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Minus the squared distance [B, K] from each encoded image x to its candidates' input class
        means (up to the image's own norm, which ranks nothing); a class without statistics yet
        ranks above every other, so it is never left out."""
        mean = self.input_sum / self.input_count.clamp(min=1)[:, None]
        key = (2 * x.flatten(1) @ mean.T - mean.pow(2).sum(1)).gather(1, labels)
        fresh = (self.input_count == 0)[labels]
        return torch.where(fresh, key.amax(1, keepdim=True) + 1, key)

    def _pruning_key(self, gs: list[torch.Tensor]) -> torch.Tensor:
        """The score accumulated over the blocks run so far (goodness of those among the scoring
        layers; of all of them when none scores yet, e.g. FF's unscored first block)."""
        scored = [g for i, g in enumerate(gs) if i in self.score_layers] or gs
        return torch.stack(scored, -1).sum(-1)

    def candidate_scores(self, x: torch.Tensor, labels: torch.Tensor, sparse: bool = False,
                         cascade: tuple[int, ...] = (), shortlist: int = 0) -> torch.Tensor:
        """Candidate scores [B, K]: goodness summed over the scoring layers, block by block.

        ``sparse`` (k-WTA networks, no gradient needed): from the winners alone, without building
        the dense activities (the goodness of an objective that sums over units is that of the winners).
        ``shortlist`` (:meth:`set_shortlist`): only the ``shortlist`` candidates nearest the image by
        their input class means enter the first block. ``cascade``: after block i only the
        ``cascade[i]`` candidates with the best score so far go on (:meth:`set_cascade`). A pruned
        candidate's score is its partial score (for the shortlist: minus its distance) shifted below
        every candidate that went further, so the ranking (argmax, hardest negatives) is the cascade's,
        but its value is no goodness. Survivors keep their original order and are picked by sort and
        gather with fixed sizes (no host synchronisation); with every k >= K the result is exhaustive
        scoring's bit for bit.
        """
        x = self.encode(x)
        b, K = labels.shape
        gs: list[torch.Tensor] = []
        pos, pruned, below = None, [], None

        def prune(key: torch.Tensor, k: int) -> torch.Tensor:
            """Keep the k best candidates by ``key`` [B, n]: their positions among the n."""
            nonlocal pos, labels
            order = key.argsort(dim=1, descending=True)  # fixed-size sort: no host synchronisation
            keep = order[:, :k].sort(dim=1).values  # survivors in their original order
            if pos is None:
                pos = torch.arange(K, device=labels.device).expand(b, K)
            if k < key.shape[1]:
                pruned.append((pos.gather(1, order[:, k:]), key.gather(1, order[:, k:])))
            pos, labels = pos.gather(1, keep), labels.gather(1, keep)
            return keep

        if shortlist and shortlist < K:
            prune(self.shortlist_key(x, labels), shortlist)
        for i, block in enumerate(self.blocks):
            if sparse:
                z = block.activation(x, self.codes, labels, below)
                vals, idx = block.winners(z)
                h = vals.flatten(-2)
                if not self.objective.sums_over_units:
                    h = torch.zeros_like(z).view(vals.shape[:-1] + (-1,)).scatter_(-1, idx, vals).view_as(z)
                gs.append(self.objective.goodness(h))
                below = block.pass_on(vals, idx) if i + 1 < len(self.blocks) else None
            else:
                a, below = block(x, self.codes, labels, below)
                gs.append(self.objective.goodness(a))
            if i < len(cascade) and i + 1 < len(self.blocks):
                n = labels.shape[1]
                keep = prune(self._pruning_key(gs), min(cascade[i], n))
                gs = [g.gather(1, keep) for g in gs]
                below = _keep(below, keep, n)
        final = torch.stack([gs[i] for i in self.score_layers], -1).sum(-1)
        if pos is None:
            return final
        out = final.new_empty(b, K).scatter_(1, pos, final)
        floor = final.amin(1, keepdim=True)
        for where, key in reversed(pruned):  # each stage's pruned candidates below all that went further
            shifted = key - key.amax(1, keepdim=True) + floor - 1
            out.scatter_(1, where, shifted)
            floor = shifted.amin(1, keepdim=True)
        return out

    def scores(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Candidate scores [B, K]: goodness summed over the scoring layers (every candidate through every block)."""
        return self.candidate_scores(x, labels)

    def sparse_scores(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The same scores as :meth:`scores` for k-WTA networks, without building the dense
        activities: the goodness of an objective that sums over units is that of the winners alone."""
        return self.candidate_scores(x, labels, sparse=True)

    def infer_scores(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """:meth:`candidate_scores` through the net's shortlist and cascade (:meth:`set_shortlist`,
        :meth:`set_cascade`), computed sparsely when no gradient is needed and every block has k-WTA."""
        sparse = not torch.is_grad_enabled() and all(b.sparse for b in self.blocks)
        return self.candidate_scores(x, labels, sparse, self.cascade, self.shortlist)

    def chunked_scores(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """:meth:`infer_scores` in chunks of at most ``max_rows`` candidate rows (images x the labels
        that enter the first block: the shortlist, where there is one)."""
        rows = min(labels.shape[1], self.shortlist or labels.shape[1])
        chunk = max(1, self.max_rows // max(1, rows))
        if len(x) <= chunk:
            return self.infer_scores(x, labels)
        return torch.cat([self.infer_scores(x[i : i + chunk], labels[i : i + chunk]) for i in range(0, len(x), chunk)])

    def get_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's activity for images x in evaluation form, flattened to [B, features]
        (Avalanche's ``BaseModel.get_features``; ffcl.strategies.baselines registers FF networks as
        ``BaseModel``). A block's activity depends on the label fed with the image, and evaluation
        ranks every seen class by its pass: the features are those of the pass for the predicted
        label, the seen class with the best score (:meth:`forward`'s argmax; every class is a
        candidate while none is seen yet), so with neuron allocation they are the predicted
        class's units. The candidates are scored without gradient; the returned pass keeps its
        graph, which (each block's input being detached) reaches the last block's parameters only.
        Two networks may predict different labels for one image, so their features can come from
        different label passes."""
        classes = self.active_classes()
        if not len(classes):
            classes = torch.arange(self.max_classes, device=x.device)
        with torch.no_grad():
            best = classes[self.chunked_scores(x, classes.expand(x.shape[0], -1)).argmax(1)]
        return self.activities(x, best[:, None])[-1].flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = self.active_classes()
        out = torch.full((x.shape[0], self.max_classes), NEG, device=x.device, dtype=x.dtype)
        if len(classes):
            out[:, classes] = self.chunked_scores(x, classes.expand(x.shape[0], -1))
        return out
