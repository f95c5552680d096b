"""The Trifecta (Dooms, Tsang, Oramas 2023; seeds/001; algorithms.md section 2): three changes that
make FF train deep conv nets.

(a) the SymBa loss, softplus(-alpha (G(x, y) - G(x, y_bar))) with alpha = 4, so positive and
negative share one image and no threshold is needed; (b) batch norm at each block's input (the
``vgg`` net's stages); (c) overlapping local updates: each block's loss also trains the block below
it, on alternating windows of two blocks (the FF template's ``update = "overlap"``). The label
enters as a learned plane appended to the image; prediction is the goodness of the last block
(``score_layers = "last"``, the authors' default), every seen class a candidate. The recipe trains
on each image's hardest wrong label (``negatives = "hardest"``; ``hard_candidates`` scores only a
few random ones): within 15 minutes on 2 cores it beats random negatives, most of which are
already easy by then and give SymBa almost no gradient (docs/conv.md).
"""

from __future__ import annotations

from typing import Any

from ..objectives import SymBa
from .ff_template import FFTemplate
from .registry import BuildContext, register_learner


@register_learner("trifecta", takes_net=True, template=dict(update="overlap"), local_blocks=True,
                  not_used={"hybrid_negatives": "its SymBa loss contrasts each positive with its own negatives"})
def trifecta(ctx: BuildContext, alpha: float = 4.0, score_layers: str = "last", standardize_input: bool = False,
             **template: Any) -> FFTemplate:
    """Trifecta on the recipe's ``net`` (``vgg`` in the recipe; on an MLP: SymBa and overlapping
    updates without the batch norm), with the FF template's options (``TEMPLATE_OPTIONS``;
    ``update = "overlap"`` by default)."""
    model = ctx.ff_net(SymBa(alpha), score_layers=score_layers, standardize_input=standardize_input,
                       mlp=dict(code="random", residual=True))
    return FFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), **template, **ctx.template_kwargs())
