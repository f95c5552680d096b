"""FF: Hinton's Forward-Forward algorithm (Hinton 2022; algorithms.md section 1).

Each layer is trained to have high goodness (sum of squared activities, threshold = width) for an
image shown with its true label and low goodness with a wrong one; a one-hot label code is
appended to the image at the first layer; activities are RMS-normalised between layers; a class
is predicted by the goodness summed over all layers but the first, all candidate labels in one
batched pass.
"""

from __future__ import annotations

from typing import Any

from ..objectives import HintonFF
from .ff_template import FFTemplate
from .registry import BuildContext, register_learner


@register_learner("ff", takes_net=True, template=dict(negatives="hardest"), local_blocks=True,
                  mlp_only=("residual",))
def ff(
    ctx: BuildContext,
    theta: float | None = 30.0,
    residual: bool = False,
    score_first_layer: bool = False,
    **template: Any,
) -> FFTemplate:
    """Hinton FF. ``theta`` is the goodness threshold (``None``: each layer's width, as loeweX; the
    default 30 was measured best, docs/learners.md); ``residual`` also feeds the image and
    label to every layer (as SFFA does); ``score_first_layer`` counts the first layer's goodness;
    the FF template's options (``TEMPLATE_OPTIONS``) with hardest negatives by default."""
    model = ctx.ff_net(HintonFF(theta), score_layers="all" if score_first_layer else "skip_first",
                       mlp=dict(code="onehot", residual=residual))
    return FFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), **template, **ctx.template_kwargs())
