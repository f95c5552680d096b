"""FF: Hinton's Forward-Forward algorithm (Hinton 2022; algorithms.md section 1).

Each layer is trained to have high goodness (sum of squared activities, threshold = width) for an
image shown with its true label and low goodness with a wrong one; a one-hot label code is
appended to the image at the first layer; activities are RMS-normalised between layers; a class
is predicted by the goodness summed over all layers but the first, all candidate labels in one
batched pass.
"""

from __future__ import annotations

from ..objectives import HintonFF
from .ff_template import FFTemplate
from .registry import BuildContext, register_learner


@register_learner("ff", takes_net=True)
def ff(
    ctx: BuildContext,
    theta: float | None = 30.0,
    negatives: str = "hardest",
    n_negatives: int = 1,
    update: str = "fused",
    peer_normalization: float = 0.0,
    training_scores: bool = True,
    residual: bool = False,
    score_first_layer: bool = False,
    seed: int = 0,
) -> FFTemplate:
    """Hinton FF. ``theta`` is the goodness threshold (``None``: each layer's width, as loeweX; the
    default 30 was measured best, docs/learners.md); ``residual`` also feeds the image and
    label to every layer (as SFFA does); ``score_first_layer`` counts the first layer's goodness."""
    model = ctx.ff_net(HintonFF(theta), score_layers="all" if score_first_layer else "skip_first",
                       code="onehot", residual=residual, seed=seed)
    return FFTemplate(
        model=model, optimizer=ctx.optimizer(model.parameters()), negatives=negatives,
        n_negatives=n_negatives, update=update, peer_normalization=peer_normalization, training_scores=training_scores, **ctx.template_kwargs(),
    )
