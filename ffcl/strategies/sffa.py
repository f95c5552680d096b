"""SFFA: the Symmetric Forward-Forward Algorithm (Terres-Escudero et al., CoLLAs 2024; seeds/002;
algorithms.md section 3).

Every layer is split into positive and negative neurons; its fitness is the positive share of the
layer's activity, trained with a symmetric binary cross-entropy (no threshold). k-winners-take-all
per half makes the activity sparse and the neurons class-specific. The image and a fixed random
binary code of the label enter every layer (the authors' residual input); each half is
RMS-normalised before the next layer. Prediction: the fitness summed over layers, every seen class
a candidate, in one batched pass.
"""

from __future__ import annotations

from typing import Any

from ..allocation import NeuronAllocation
from ..config import ConfigError
from ..objectives import SFFA
from .ff_template import FFTemplate
from .registry import BuildContext, register_learner, register_plugin


@register_learner("sffa", takes_net=True, template={}, local_blocks=True,
                  mlp_only=("k", "boost", "code_dim", "code_p", "code_scale", "seed"),
                  not_used={"collaboration": "its symmetric loss reads no other layer's goodness"})
def sffa(
    ctx: BuildContext,
    k: int = 15,
    boost: float = 0.0,
    code_dim: int = 100,
    code_p: float = 0.1,
    code_scale: float = 1.0,
    standardize_input: bool = False,
    collapse_weight: float = 10.0,
    seed: int = 0,
    **template: Any,
) -> FFTemplate:
    """SFFA with top-``k`` winners per half (``boost``: k-WTA boosting, ffcl.nn.ff.FFBlock) and ``code_dim``-bit random label codes,
    plus the FF template's options (``TEMPLATE_OPTIONS``; ``hybrid_negatives``: self-generated negatives, ffcl.allocation).
    On a conv net the label enters as a learned plane: the label-code and k-WTA arguments are MLP-only."""
    hidden = ctx.blocks()
    if ctx.config.net == "mlp" and not 1 <= k <= min(hidden) // 2:
        raise ConfigError(f"sffa: 'k' (winners per half of a layer) must lie in 1..{min(hidden) // 2}, got {k}")
    if boost < 0:
        raise ConfigError(f"sffa: 'boost' must be >= 0 (0 turns boosting off), got {boost}")
    model = ctx.ff_net(SFFA(collapse_weight), split=True, standardize_input=standardize_input,
                       mlp=dict(code="random", code_dim=code_dim, code_p=code_p, code_scale=code_scale, residual=True,
                                k=k, boost=boost, seed=seed))
    return FFTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), **template, **ctx.template_kwargs())


@register_plugin("allocation")
def allocation(ctx: BuildContext, max_classes: int | None = None, freeze: bool = True) -> NeuronAllocation:
    """Sparsity-based neuron allocation (ffcl.allocation): each class owns (and then freezes) its neurons."""
    return NeuronAllocation(max_classes=max_classes or ctx.num_classes, freeze=freeze)
