"""Convolutional FF networks: the conv stages of :mod:`ffcl.nn.conv` as local blocks that take the label as input.

The label enters as a learned plane per class appended to the image as an extra input channel
(the Trifecta's ``nn.Embedding(C, H*W)``, seeds/001, algorithms.md section 2; a label code in the
pixels would vanish after convolution and pooling, pitfall 6). Each stage is one local block:
back-propagation inside the stage (a ResNet basic block is two convolutions with their shortcut:
seeds/004's block-local hybrid training), nothing across stages, because each block passes on its
output RMS-normalised per sample (per half of the channels for positive/negative neurons) and
detached. Activities are the stage outputs flattened, [batch, candidates, C*H*W]: position-major
(the channels-last memory order, so no copy), or channel-major in blocks with positive and
negative channel halves, so an objective that splits units into halves (SFFA) splits the channels. Same interface as
:class:`~ffcl.nn.ff.FFNet`, so the one FF template trains either.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives import Objective
from .conv import _image_shape, channels_last, local_blocks, output_shapes
from .ff import FFNet, rms_normalize, standardize_images

__all__ = ["ConvFFBlock", "ConvFFNet", "PrototypeHead", "SFFNet", "SFF_HEADS"]

SFF_HEADS = ("conv", "prototype")


def _score_layers(score_layers: str, n_blocks: int) -> list[int]:
    """The blocks whose goodness makes the score: ``all`` of them or the ``last``."""
    if score_layers not in ("all", "last"):
        raise ValueError(f"score_layers must be 'all' or 'last', got '{score_layers}'")
    return list(range(n_blocks))[-1:] if score_layers == "last" else list(range(n_blocks))


class ConvFFBlock(nn.Module):
    """One local conv block; the first also holds the label planes ([classes, 1, H, W])."""

    sparse = False
    split = False

    def __init__(self, stage: nn.Module, *, label_shape: tuple[int, int, int] | None = None, split: bool = False) -> None:
        super().__init__()
        self.stage = stage
        self.label = nn.Parameter(torch.randn(*label_shape)) if label_shape else None
        self.split = split

    def update_duty(self, h_pos: torch.Tensor) -> None:
        """No k-WTA boosting on conv blocks."""

    def forward(self, x: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor, below: torch.Tensor | None = None,
                detach: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, H, W], labels [B, K], below [B*K, C', H', W'] (None for the first block) ->
        (activity [B, K, C''*H''*W''], what the next block receives [B*K, C'', H'', W''])."""
        b, k = labels.shape
        if below is None:
            planes = self.label[labels[0]][None].expand(b, -1, -1, -1, -1) if labels.stride(0) == 0 else self.label[labels]
            below = torch.cat([x[:, None].expand(-1, k, -1, -1, -1), planes], dim=2).flatten(0, 1)
        z = self.stage(channels_last(below))
        if self.split:  # positive/negative channel halves (SFFA) need the units channel-major (a copy)
            units = z.flatten(1)
            nxt = rms_normalize(units, split=True).view(z.shape)
        else:  # units in z's channels-last memory order: a view, so the loss keeps no copy
            positions = z.permute(0, 2, 3, 1)
            units = positions.flatten(1)
            nxt = rms_normalize(units).view(positions.shape).permute(0, 3, 1, 2)
        return units.view(b, k, -1), nxt.detach() if detach else nxt


class ConvFFNet(FFNet):
    """A stack of :class:`ConvFFBlock` (``net``: ``vgg``, ``resnet`` or ``mobilenet``, widths
    ``hidden``) trained by a layer-local :class:`Objective`; ``forward``, ``activities`` and
    ``get_features`` as in :class:`FFNet`. ``split`` gives each block positive and negative channel
    halves (SFFA); ``stages_per_block`` stages make one local block (:func:`~ffcl.nn.conv.local_blocks`)."""

    def __init__(self, net: str, input_shape: tuple[int, ...], hidden: list[int], max_classes: int, objective: Objective, *,
                 split: bool = False, score_layers: str = "all", standardize_input: bool = False,
                 stages_per_block: int = 1) -> None:
        nn.Module.__init__(self)
        c, h, w = _image_shape(input_shape)
        if split and any(width % 2 for width in hidden):
            raise ValueError(f"positive and negative channel halves need even widths, got {hidden}")
        self.objective, self.split, self.standardize_input = objective, split, standardize_input
        self.input_dim = c * h * w
        self.register_buffer("codes", torch.zeros(max_classes, 0))  # the label enters as a learned plane, not a code
        self.register_buffer("active", torch.zeros(max_classes, dtype=torch.bool))
        self.register_buffer("frozen", torch.zeros(max_classes, dtype=torch.bool))
        stages, _ = local_blocks(net, c + 1, hidden, (h, w), stages_per_block)
        self.blocks = nn.ModuleList(
            ConvFFBlock(s, label_shape=(max_classes, 1, h, w) if i == 0 else None, split=split) for i, s in enumerate(stages))
        self.score_layers = _score_layers(score_layers, len(stages))
        self.max_rows = 160  # candidate rows per scoring chunk: 1.5x faster than 1,280 at once (a CPU's cache)

    def grow(self, num_classes: int) -> None:
        """Room for labels up to ``num_classes - 1``: new label planes, old ones kept."""
        old = self.max_classes
        if num_classes <= old:
            return
        extra = num_classes - old
        self.codes = self.codes.new_zeros(num_classes, 0)
        self.active = torch.cat([self.active, self.active.new_zeros(extra)])
        self.frozen = torch.cat([self.frozen, self.frozen.new_zeros(extra)])
        self._grow_input_means(num_classes)
        first = self.blocks[0]
        first.label = nn.Parameter(torch.cat([first.label.detach(), torch.randn(extra, *first.label.shape[1:], device=first.label.device)]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images as the first block sees them: standardised per image with ``standardize_input``."""
        return standardize_images(x) if self.standardize_input else x


class PrototypeHead(nn.Module):
    """A learned centroid per class, mu [classes, D], for a block's output ([C, H, W] per image)
    average-pooled to at most ``grid`` x ``grid`` positions and flattened (D units: the pooling keeps
    the [B, classes, D] displacements small at full resolution); ``forward`` gives each class's
    displacement LN(z) - mu_c, LN the per-sample standardisation (DF's one-pass form, algorithms.md
    section 4: the ``centroid`` objective's goodness is minus its mean square). ``out_channels``
    counts classes, as a conv head's does."""

    def __init__(self, shape: torch.Size, classes: int, grid: int = 4) -> None:
        super().__init__()
        c, h, w = shape
        self.pooled = (min(grid, h), min(grid, w))
        self.centroids = nn.Parameter(torch.zeros(classes, c * self.pooled[0] * self.pooled[1]))

    @property
    def out_channels(self) -> int:
        return self.centroids.shape[0]

    def grow(self, num_classes: int) -> None:
        """Room for labels up to ``num_classes - 1``: new centroids at the origin, old ones kept."""
        extra = num_classes - self.out_channels
        if extra > 0:
            self.centroids = nn.Parameter(torch.cat([self.centroids.detach(), self.centroids.new_zeros(extra, self.centroids.shape[1])]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = F.adaptive_avg_pool2d(z, self.pooled).flatten(1)
        return F.layer_norm(u, u.shape[1:])[:, None] - self.centroids


class SFFNet(nn.Module):
    """Scalable FF (Krutsylo 2025; seeds/004; algorithms.md section 6): conv stages that take no label,
    each followed by an auxiliary 1x1 convolution with one output channel per class. Class c's
    goodness at a block is the objective's goodness of channel c's map, so one pass scores every
    class; each stage sees the one below RMS-normalised per sample and detached (back-propagation
    inside a stage, nothing across stages; ``stages_per_block`` stages per local block, and a head
    after each block, with :func:`~ffcl.nn.conv.local_blocks`). ``head = "prototype"`` puts a
    :class:`PrototypeHead` after each block instead (DF's one-pass form, with the ``centroid``
    objective)."""

    def __init__(self, net: str, input_shape: tuple[int, ...], hidden: list[int], max_classes: int, objective: Objective, *,
                 score_layers: str = "all", stages_per_block: int = 1, head: str = "conv") -> None:
        super().__init__()
        if head not in SFF_HEADS:
            raise ValueError(f"head must be one of {', '.join(SFF_HEADS)}, got '{head}'")
        c, h, w = _image_shape(input_shape)
        self.objective = objective
        blocks, widths = local_blocks(net, c, hidden, (h, w), stages_per_block)
        self.blocks = nn.ModuleList(blocks)
        if head == "conv":
            self.heads = nn.ModuleList(nn.Conv2d(width, max_classes, 1) for width in widths)
        else:
            self.heads = nn.ModuleList(PrototypeHead(shape, max_classes) for shape in output_shapes(blocks, (c, h, w)))
        self.score_layers = _score_layers(score_layers, len(blocks))

    @property
    def max_classes(self) -> int:
        return self.heads[0].out_channels

    def grow(self, num_classes: int) -> None:
        """Room for labels up to ``num_classes - 1``: new output channels in every head, old ones kept."""
        for i, head in enumerate(self.heads):
            if isinstance(head, PrototypeHead):
                head.grow(num_classes)
            elif num_classes > head.out_channels:
                new = nn.Conv2d(head.in_channels, num_classes, 1).to(head.weight.device)
                with torch.no_grad():
                    new.weight[: head.out_channels], new.bias[: head.out_channels] = head.weight, head.bias
                self.heads[i] = new

    def iter_maps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Block by block, every class's map [B, classes, H*W]; a block runs when the previous map
        has been consumed (a consumer may back-propagate and free each block's graph in turn)."""
        for stage, head in zip(self.blocks, self.heads):
            z = stage(channels_last(x))
            yield head(z).flatten(2)  # a conv head's maps [B, classes, H, W]; a prototype head's [B, classes, D] already
            x = rms_normalize(z.detach().flatten(1)).view(z.shape)

    def class_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per block, every class's map [B, classes, H*W]."""
        return list(self.iter_maps(x))

    def scores(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Class scores [B, classes]: goodness averaged over the scoring blocks (the blocks' vote)."""
        return torch.stack([self.objective.goodness(maps[i]) for i in self.score_layers]).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(self.class_maps(x))
