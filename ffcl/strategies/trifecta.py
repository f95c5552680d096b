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

from ..objectives import SymBa
from .ff_template import FFTemplate
from .registry import BuildContext, register_learner


@register_learner("trifecta", takes_net=True)
def trifecta(
    ctx: BuildContext,
    alpha: float = 4.0,
    update: str = "overlap",
    score_layers: str = "last",
    negatives: str = "random",
    n_negatives: int = 1,
    standardize_input: bool = False,
    hybrid_negatives: float = 0.0,
    training_scores: bool = True,
    label_every_block: bool = False,
    hard_candidates: int = 0,
) -> FFTemplate:
    """Trifecta on the recipe's ``net`` (``vgg`` in the recipe; on an MLP: SymBa and overlapping
    updates without the batch norm)."""
    model = ctx.ff_net(SymBa(alpha), score_layers=score_layers, standardize_input=standardize_input,
                       label_every_block=label_every_block, code="random", residual=True)
    return FFTemplate(
        model=model, optimizer=ctx.optimizer(model.parameters()), negatives=negatives, n_negatives=n_negatives,
        update=update, hybrid_negatives=hybrid_negatives, training_scores=training_scores,
        hard_candidates=hard_candidates, **ctx.template_kwargs(),
    )
