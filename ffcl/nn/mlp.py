"""The back-propagation MLP the baselines train (same sizes as the FF learners)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU] x len(hidden) -> Linear(num_classes).

    ``features`` and ``classifier`` are separate modules, for strategies that need a feature extractor.
    """

    def __init__(self, input_shape: tuple[int, ...], hidden: list[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)
        self.feature_size = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
