"""Convolutional stages shared by the back-propagation baselines and the FF learners.

A recipe picks the network with ``net`` and its widths with ``hidden`` (one entry per stage):

* ``vgg``: BN -> Conv3x3 (no bias) -> ReLU, with a 2x2 max-pool after stages 0, 2 and 5 and every
  third stage after (the Trifecta's "small" net, seeds/001, is ``hidden = [128, 128, 256, 256,
  256, 512]``; algorithms.md section 2b).
* ``resnet``: ResNet basic blocks (two 3x3 convolutions with batch norm and an identity or 1x1
  shortcut), stride 2 whenever the width grows; ``[64, 64, 128, 128, 256, 256, 512, 512]`` is
  ResNet-18's body (He et al. 2016) behind a 3x3 stem, as seeds/004 trains it.
* ``mobilenet``: MobileNetV3 inverted residuals (1x1 expansion x4, depthwise 3x3, squeeze-and-
  excitation, 1x1 projection, hard-swish), stride 2 whenever the width grows (Howard et al. 2019).

Each stage is one unit of local learning for the FF learners (back-propagation inside a stage,
nothing across stages: seeds/004's block-local hybrid training), and a plain stack of stages for
back-propagation. :class:`ConvNet` is that stack with a linear classifier: the BP baseline on the
same architecture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import widen_classifier

__all__ = ["NETS", "CONV_NETS", "conv_stages", "local_blocks", "output_shapes", "channels_last", "ConvNet"]

NETS = ("mlp", "vgg", "resnet", "mobilenet")
CONV_NETS = NETS[1:]


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images [N, C, H, W] in channels-last memory order, which the stages keep: oneDNN's CPU
    convolutions and pooling run faster on it (the Trifecta's vgg net on MNIST: a training step
    22% faster, a scoring pass over ten labels 37%). The values and shape are unchanged."""
    return x.contiguous(memory_format=torch.channels_last)


def _pools(n: int) -> set[int]:
    """Stages followed by a max-pool in a ``vgg`` net: 0, 2, 5, then every third."""
    return {0, 2} | set(range(5, n, 3))


class VGGStage(nn.Sequential):
    """BN -> Conv3x3 (no bias) -> ReLU [-> MaxPool2]: a Trifecta block (batch norm at its input;
    without a learned scale and shift when ``affine`` is false, as DC's blocks, seeds/003)."""

    def __init__(self, cin: int, cout: int, pool: bool, affine: bool = True) -> None:
        super().__init__(nn.BatchNorm2d(cin, affine=affine), nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.ReLU(inplace=True),
                         *([nn.MaxPool2d(2)] if pool else []))
        self.stride = 2 if pool else 1


class BasicBlock(nn.Module):
    """ResNet basic block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1x1 expand -> depthwise 3x3 -> squeeze-excite -> 1x1 project (+ x)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.Hardswish())
        squeeze = max(8, mid // 4)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(mid, squeeze, 1), nn.ReLU(), nn.Conv2d(squeeze, mid, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.depthwise(self.expand(x))
        h = self.project(h * self.se(h))
        return x + h if self.residual else h


def conv_stages(net: str, in_channels: int, widths: list[int], input_size: tuple[int, int],
                input_norm_affine: bool = True) -> list[nn.Module]:
    """The stages of a ``net`` (see the module docstring) on ``in_channels``-channel images;
    ``input_norm_affine`` false drops the learned scale and shift of a ``vgg`` stage's input batch norm.

    ResNet and MobileNet nets open with a 3x3 stem convolution (+BN+ReLU) inside their first stage.
    A stride-2 stage is skipped back to stride 1 once the map is down to 1 pixel."""
    if net not in CONV_NETS:
        raise ValueError(f"net must be one of {', '.join(CONV_NETS)}, got '{net}'")
    stages: list[nn.Module] = []
    size = min(input_size)
    cin = in_channels
    pools = _pools(len(widths))
    for i, cout in enumerate(widths):
        down = size > 1 and ((i in pools) if net == "vgg" else (i > 0 and cout > widths[i - 1]))
        if net == "vgg":
            stage: nn.Module = VGGStage(cin, cout, down, input_norm_affine)
        else:
            block = BasicBlock if net == "resnet" else InvertedResidual
            if i == 0:
                stem = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
                stage = nn.Sequential(stem, block(cout, cout, 1))
                stage.stride = 1  # type: ignore[assignment]
            else:
                stage = block(cin, cout, 2 if down else 1)
        stages.append(stage)
        size = (size + 1) // 2 if down else size
        cin = cout
    return stages


def local_blocks(net: str, in_channels: int, widths: list[int], input_size: tuple[int, int],
                 stages_per_block: int = 1, input_norm_affine: bool = True) -> tuple[list[nn.Module], list[int]]:
    """The stages of a ``net`` grouped ``stages_per_block`` at a time into the units of local
    learning (the last block may hold fewer), and each block's output width.

    Back-propagation runs through the stages of a block and never across blocks: seeds/004's
    block-local hybrid training, for a net whose stages are single convolutions (``vgg``)."""
    if stages_per_block < 1:
        raise ValueError(f"stages_per_block must be >= 1, got {stages_per_block}")
    stages = conv_stages(net, in_channels, widths, input_size, input_norm_affine)
    starts = range(0, len(stages), stages_per_block)
    # one stage per block stays unwrapped: the parameter names (and saved learners) of the one-stage form
    blocks = [stages[i] if stages_per_block == 1 else nn.Sequential(*stages[i:i + stages_per_block]) for i in starts]
    return blocks, [widths[min(i + stages_per_block, len(widths)) - 1] for i in starts]


def output_shapes(blocks: list[nn.Module], input_shape: tuple[int, int, int]) -> list[torch.Size]:
    """The shape of each block's output, [C, H, W], for one image of ``input_shape``, found by a
    dummy pass in eval mode (batch norm's running statistics stay untouched)."""
    modes = [m.training for m in blocks]
    x, sizes = torch.zeros(1, *input_shape), []
    with torch.no_grad():
        for block in blocks:
            x = block.eval()(x)
            sizes.append(x.shape[1:])
    for block, mode in zip(blocks, modes):
        block.train(mode)
    return sizes


class ConvNet(nn.Module):
    """Back-propagation baseline: the conv stages, global average pooling, a linear classifier.

    ``features`` and ``classifier`` are separate modules (strategies that need a feature
    extractor), as in :class:`~ffcl.nn.mlp.MLP`; ``grow`` widens the classifier the same way."""

    def __init__(self, net: str, input_shape: tuple[int, ...], widths: list[int], num_classes: int) -> None:
        super().__init__()
        c, h, w = _image_shape(input_shape)
        self.features = nn.Sequential(*conv_stages(net, c, widths, (h, w)), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.feature_size = widths[-1]

    max_classes = property(lambda self: self.classifier.out_features)

    def grow(self, num_classes: int) -> None:
        widen_classifier(self, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(channels_last(x)))


def _image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"a convolutional net needs images [channels, height, width], got input shape {tuple(input_shape)}")
    return input_shape  # type: ignore[return-value]
