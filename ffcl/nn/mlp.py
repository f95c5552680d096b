"""The back-propagation MLP the baselines train (same sizes as the FF learners)."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MLP", "widen_classifier"]


def widen_classifier(model: nn.Module, num_classes: int) -> None:
    """Widen ``model.classifier`` to ``num_classes`` outputs (new rows freshly initialised, old rows
    kept). The classifier becomes a new parameter; Avalanche's ``make_optimizer`` re-registers it."""
    old = model.classifier
    if num_classes <= old.out_features:
        return
    new = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    with torch.no_grad():
        new.weight[: old.out_features] = old.weight
        new.bias[: old.out_features] = old.bias
    model.classifier = new


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

    @property
    def max_classes(self) -> int:
        return self.classifier.out_features

    def grow(self, num_classes: int) -> None:
        """Widen the output layer to ``num_classes`` (see :func:`widen_classifier`)."""
        widen_classifier(self, num_classes)

    def get_features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer's activities [B, hidden[-1]] (the flattened input when ``hidden`` is
        empty): what the classifier reads, and what Avalanche's ``BaseModel.get_features`` asks for
        (LFLPlugin; ffcl.strategies.baselines registers MLP as a ``BaseModel``)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
