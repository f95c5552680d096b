"""Scalable FF (Krutsylo 2025, arXiv 2501.03176; seeds/004; algorithms.md section 6): FF on
unmodified conv nets, one pass per image.

No label enters the network. After each stage an auxiliary 1x1 convolution gives one channel per
class, and class c's goodness is the mean square of its channel (``ffcl.objectives``: the
objective's goodness of that map). Each block's loss contrasts the true class's channel with all
the others, by default the log-sum-exp margin loss log(1 + sum_{c != y} exp(g_c - g_y + m)), m = 1
(the ``distance`` objective with gamma = 1). Back-propagation runs inside a stage (a ResNet basic
block, a MobileNet inverted residual) and never across stages: the block-local hybrid training of
seeds/004; ``stages_per_block`` groups stages into larger local blocks). Prediction: the blocks'
goodness vectors averaged, one pass whatever the number of classes. ``update = "blockwise"``
back-propagates each block's loss as soon as its maps exist, so one block's graph is alive at a
time (the same gradients as the default ``fused``: one backward of the summed losses).
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

__all__ = ["SFFTemplate", "SFF_UPDATES"]

SFF_UPDATES = ("fused", "blockwise")


class SFFTemplate(TensorLoaders, SupervisedTemplate):
    """Training step: one pass gives every block's class maps; the output is their scores (before
    the update), the loss the sum of the blocks' local losses, each with the true class's map as
    the positive and every other class's as its negatives.

    :param update: ``fused`` (one backward of the summed block losses in :meth:`backward`) or
        ``blockwise`` (each block's loss back-propagated in :meth:`forward` before the next block
        runs; plugins' penalties, EWC's or SI's, are back-propagated in :meth:`backward`)."""

    def __init__(self, *, update: str = "fused", **kwargs: Any) -> None:
        if update not in SFF_UPDATES:
            raise ConfigError(f"learner_args.update must be one of {', '.join(SFF_UPDATES)} (sff, df_proto), got '{update}'")
        super().__init__(**kwargs)
        self.update = update

    def _class_order(self) -> torch.Tensor:
        """Per sample, the true class first and every other class after it (its negatives), [B, C]."""
        y = self.mb_y
        return torch.cat([y[:, None], sample_negatives(y, torch.arange(self.model.max_classes, device=y.device), 0, "all")], 1)

    def _block_loss(self, maps: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """A block's local loss on its class maps [B, C, H*W], taken in ``order``."""
        return self.model.objective.loss(maps.gather(1, order[..., None].expand(-1, -1, maps.shape[2])))

    def forward(self) -> torch.Tensor:
        if not self.is_training:
            return super().forward()
        model: SFFNet = self.model
        if self.update == "fused":
            self._maps = model.class_maps(self.mb_x)
            return model.scores(self._maps).detach()
        maps, self._blockwise_loss, order = [], torch.zeros((), device=self.mb_x.device), self._class_order()
        for m in model.iter_maps(self.mb_x):
            loss = self._block_loss(m, order)
            loss.backward()  # frees this block's graph before the next block runs
            self._blockwise_loss = self._blockwise_loss + loss.detach()
            maps.append(m.detach())
        return model.scores(maps)

    def criterion(self) -> torch.Tensor:
        if not self.is_training:
            return super().criterion()
        if self.update == "blockwise":
            return self._blockwise_loss
        order = self._class_order()
        return sum(self._block_loss(m, order) for m in self._maps)

    def backward(self) -> None:
        if self.is_training and self.update == "blockwise":
            if self.loss.requires_grad:  # the block losses are back-propagated; a plugin's penalty remains
                self.loss.backward(retain_graph=self.retain_graph)
            return
        super().backward()


@register_learner("sff", takes_net=True, local_blocks=True)
def sff(ctx: BuildContext, objective: str = "distance", objective_args: dict[str, Any] | None = None,
        score_layers: str = "all", update: str = "fused") -> SFFTemplate:
    """SFF on the recipe's conv ``net`` with a registered ``objective`` (default: the margin loss,
    ``distance`` with gamma 1 and margin 1)."""
    if ctx.config.net == "mlp":
        raise ConfigError("learner 'sff' trains conv stages with per-class channels: set strategy.net to vgg, resnet or mobilenet")
    if objective not in OBJECTIVES:
        raise ConfigError(f"sff: unknown objective '{objective}'; choose one of: {', '.join(sorted(OBJECTIVES))}")
    args = {"gamma": 1.0, "margin": 1.0} if objective == "distance" and objective_args is None else dict(objective_args or {})
    try:
        model = SFFNet(ctx.config.net, ctx.image_shape(), ctx.blocks(), ctx.num_classes, make_objective(objective, **args),
                       score_layers=score_layers, stages_per_block=ctx.config.stages_per_block)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"sff: {e}") from None
    return SFFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), update=update, **ctx.template_kwargs())
