"""Scalable FF (Krutsylo 2025, arXiv 2501.03176; seeds/004; algorithms.md section 6): FF on
unmodified conv nets, one pass per image.

No label enters the network. After each stage an auxiliary 1x1 convolution gives one channel per
class, and class c's goodness is the mean square of its channel (``ffcl.objectives``: the
objective's goodness of that map). Each block's loss contrasts the true class's channel with all
the others, by default the log-sum-exp margin loss log(1 + sum_{c != y} exp(g_c - g_y + m)), m = 1
(the ``distance`` objective with gamma = 1). Back-propagation runs inside a stage (a ResNet basic
block, a MobileNet inverted residual) and never across stages: the block-local hybrid training of
seeds/004. Prediction: the blocks' goodness vectors averaged, one pass whatever the number of
classes.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.templates import SupervisedTemplate

from ..config import ConfigError
from ..data.loaders import TensorLoaders
from ..nn.conv_ff import SFFNet
from ..objectives import OBJECTIVES, make_objective
from .ff_template import sample_negatives
from .registry import BuildContext, register_learner

__all__ = ["SFFTemplate"]


class SFFTemplate(TensorLoaders, SupervisedTemplate):
    """Training step: one pass gives every block's class maps; the output is their scores (before
    the update), the loss the sum of the blocks' local losses, each with the true class's map as
    the positive and every other class's as its negatives."""

    def forward(self) -> torch.Tensor:
        if not self.is_training:
            return super().forward()
        self._maps = self.model.class_maps(self.mb_x)
        return self.model.scores(self._maps).detach()

    def criterion(self) -> torch.Tensor:
        if not self.is_training:
            return super().criterion()
        model: SFFNet = self.model
        y = self.mb_y
        order = torch.cat([y[:, None], sample_negatives(y, torch.arange(model.max_classes, device=y.device), 0, "all")], 1)
        return sum(model.objective.loss(m.gather(1, order[..., None].expand(-1, -1, m.shape[2]))) for m in self._maps)


@register_learner("sff", takes_net=True)
def sff(ctx: BuildContext, objective: str = "distance", objective_args: dict[str, Any] | None = None,
        score_layers: str = "all") -> SFFTemplate:
    """SFF on the recipe's conv ``net`` with a registered ``objective`` (default: the margin loss,
    ``distance`` with gamma 1 and margin 1)."""
    if ctx.config.net == "mlp":
        raise ConfigError("learner 'sff' trains conv stages with per-class channels: set strategy.net to vgg, resnet or mobilenet")
    if objective not in OBJECTIVES:
        raise ConfigError(f"sff: unknown objective '{objective}'; choose one of: {', '.join(sorted(OBJECTIVES))}")
    args = {"gamma": 1.0, "margin": 1.0} if objective == "distance" and objective_args is None else dict(objective_args or {})
    try:
        model = SFFNet(ctx.config.net, ctx.image_shape(), ctx.blocks(), ctx.num_classes, make_objective(objective, **args),
                       score_layers=score_layers)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"sff: {e}") from None
    return SFFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), **ctx.template_kwargs())
