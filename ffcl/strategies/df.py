"""DF: Distance-Forward (Wu et al. 2024, arXiv 2408.14925; seeds/000; algorithms.md section 4).

FF as centroid-based metric learning: with the label code at the input of every layer, the
goodness of the pass for label c measures how close the image's features are to class c's
centroid. A goodness-based N-pair margin loss contrasts the true label with several wrong ones at
once, and layer collaboration lets each layer see (without gradient) what the others score.
"""

from __future__ import annotations

from typing import Any

from ..config import ConfigError
from ..nn.conv_ff import SFFNet
from ..objectives import CentroidDistance, DistanceNPair
from .ff_template import FFTemplate
from .registry import BuildContext, register_learner
from .sff import SFFTemplate


@register_learner("df", takes_net=True, template=dict(negatives="hardest", n_negatives=4, collaboration=True), local_blocks=True,
                  mlp_only=("code_dim", "code_p", "code_scale", "seed"),
                  not_used={"hybrid_negatives": "its N-pair loss contrasts each positive with its own negatives"})
def df(
    ctx: BuildContext,
    gamma: float = 4.0,
    margin: float = 0.5,
    code_dim: int = 100,
    code_p: float = 0.1,
    code_scale: float = 1.0,
    standardize_input: bool = False,
    seed: int = 0,
    **template: Any,
) -> FFTemplate:
    """DF with an N-pair margin loss over ``n_negatives`` (4) wrong labels per image (by default the
    hardest: +1.6 points after one MNIST epoch, docs/learners.md) and layer collaboration, plus
    the FF template's other options (``TEMPLATE_OPTIONS``)."""
    model = ctx.ff_net(DistanceNPair(gamma, margin), standardize_input=standardize_input,
                       mlp=dict(code="random", code_dim=code_dim, code_p=code_p, code_scale=code_scale, residual=True, seed=seed))
    return FFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), **template, **ctx.template_kwargs())


@register_learner("df_proto", takes_net=True, local_blocks=True)
def df_proto(ctx: BuildContext, gamma: float = 4.0, margin: float = 0.5, score_layers: str = "all",
             update: str = "fused") -> SFFTemplate:
    """DF's one-pass prototype form on the recipe's conv ``net``: one pass per image, whatever the
    number of classes."""
    if ctx.config.net == "mlp":
        raise ConfigError("learner 'df_proto' puts class centroids after conv blocks: set strategy.net to vgg, resnet or mobilenet")
    try:
        model = SFFNet(ctx.config.net, ctx.image_shape(), ctx.blocks(), ctx.num_classes, CentroidDistance(gamma, margin),
                       score_layers=score_layers, stages_per_block=ctx.config.stages_per_block, head="prototype")
    except (TypeError, ValueError) as e:
        raise ConfigError(f"df_proto: {e}") from None
    return SFFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), update=update, **ctx.template_kwargs())
