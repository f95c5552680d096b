"""Label-free FF blocks trained by dimensionality compression (seeds/003), as a feature extractor.

Each block is h_i = ReLU(W_i n(h_{i-1}) + b_i), with n the RMS normalisation of the detached
activity below (the first block sees the image, standardised per image if asked). The local loss
of a block (``ffcl.objectives.dimcomp``) is computed on its responses to ``copies`` dropout copies
of each image (noise enters at the first block only), after a fixed random orthogonal projection
to ``proj_dim`` channels, as in the authors' code. The features are the blocks' outputs, concatenated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..objectives import Objective
from .conv import _image_shape, local_blocks, output_shapes
from .ff import rms_normalize, standardize_images

__all__ = ["DCNet"]


class DCNet(nn.Module):
    def __init__(
        self, input_shape: tuple[int, ...], hidden: list[int], objective: Objective, *,
        copies: int = 10, dropout: float = 0.2, proj_dim: int = 100, standardize_input: bool = False, seed: int = 0,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("a DC network needs at least one block ('hidden' is empty)")
        if copies < 2:
            raise ValueError(f"copies must be >= 2 (consistency is measured over noisy copies), got {copies}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        g = torch.Generator().manual_seed(seed)
        widths = [math.prod(input_shape), *hidden]
        self.blocks = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        for i, w in enumerate(hidden):
            q, _ = torch.linalg.qr(torch.randn(w, min(proj_dim, w), generator=g))
            self.register_buffer(f"proj{i}", q)
        self.objective, self.copies, self.dropout = objective, copies, dropout
        self.standardize_input = standardize_input
        self.feature_size = sum(hidden)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return standardize_images(x) if self.standardize_input else x

    def _activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], x
        for block in self.blocks:
            h = F.relu(block(h))
            out.append(h)
            h = rms_normalize(h.detach())
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, sum(hidden)]: every block's activity, concatenated."""
        return torch.cat(self._activities(self._input(x)), dim=-1)

    def local_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the blocks' DC losses on ``copies`` dropout copies of each image (no gradient crosses a block)."""
        x = self._input(x)
        noisy = F.dropout(x[:, None].expand(-1, self.copies, -1), self.dropout, training=True)
        acts = self._activities(noisy)
        return sum(self.objective.loss(a @ getattr(self, f"proj{i}")) for i, a in enumerate(acts))


class DCConvNet(nn.Module):
    """The conv stages of ``net`` (:mod:`ffcl.nn.conv`) as label-free DC blocks (seeds/003's conv form).

    Each stage sees the previous stage's output RMS-normalised per sample and detached; its DC loss
    is computed on its responses to ``copies`` dropout copies of each image, after a fixed random
    orthogonal projection of the channels to ``proj_dim`` (per position). The features are the last
    stage's output, flattened (the authors' readout input).
    """

    def __init__(
        self, net: str, input_shape: tuple[int, ...], hidden: list[int], objective: Objective, *,
        copies: int = 10, dropout: float = 0.2, proj_dim: int = 32, standardize_input: bool = False, seed: int = 0,
        stages_per_block: int = 1,
    ) -> None:
        super().__init__()
        if copies < 2:
            raise ValueError(f"copies must be >= 2 (consistency is measured over noisy copies), got {copies}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        c, h, w = _image_shape(input_shape)
        # batch norm at a vgg stage's input without a learned scale and shift (the authors'): with one,
        # the scale-free DC loss let the shift silence the blocks (docs/conv.md)
        blocks, widths = local_blocks(net, c, hidden, (h, w), stages_per_block, input_norm_affine=False)
        self.blocks = nn.ModuleList(blocks)
        g = torch.Generator().manual_seed(seed)
        for i, width in enumerate(widths):
            q, _ = torch.linalg.qr(torch.randn(width, min(proj_dim, width), generator=g))
            self.register_buffer(f"proj{i}", q)
        self.objective, self.copies, self.dropout = objective, copies, dropout
        self.standardize_input = standardize_input
        self.feature_size = output_shapes(blocks, (c, h, w))[-1].numel()

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return standardize_images(x) if self.standardize_input else x

    def _activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], x
        for block in self.blocks:
            h = block(h)
            out.append(h)
            h = rms_normalize(h.detach().flatten(1)).view_as(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, C*H*W] of the last stage."""
        return self._activities(self._input(x))[-1].flatten(1)

    def noisy_activities(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Each stage's responses to ``copies`` dropout copies of each image, [B, N, C, H, W]."""
        x = self._input(x)
        b, n = x.shape[0], self.copies
        copies = x[:, None].expand(b, n, *x.shape[1:])
        keep = torch.rand(copies.shape, device=x.device, generator=generator) >= self.dropout
        acts = self._activities((copies * keep / (1 - self.dropout)).flatten(0, 1))
        return [a.view(b, n, *a.shape[1:]) for a in acts]

    def local_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of the stages' DC losses on ``copies`` dropout copies of each image (as :meth:`DCNet.local_loss`)."""
        return self.compression_loss(self.noisy_activities(x))

    def compression_loss(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Sum of the stages' DC losses on their noisy responses (no gradient crosses a stage)."""
        total = 0
        for i, a in enumerate(acts):
            h = a.flatten(3).transpose(2, 3) @ getattr(self, f"proj{i}")  # [B, N, H*W, proj]
            total = total + self.objective.loss(h)
        return total
