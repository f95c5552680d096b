"""DC: dimensionality compression as a classifier (Zhu, Qi, Ma, Lu, Feng, NeurIPS 2025; seeds/003;
algorithms.md section 5).

Label-free conv blocks learn by dimensionality compression on N dropout copies of each image
(``ffcl.objectives.dimcomp``: consistent over the copies of one image, diverse across images; no
negatives, no labels). A linear readout on the last block's features (dropout 0.5) learns by
cross-entropy on the energy score of the copies' logits z_s, score_c = sum_s z_{s,c}^2 / (N - 1),
the authors' prediction rule; back-propagation reaches the readout only. Prediction runs N noisy
copies (with a fixed noise seed, so evaluation is reproducible): one pass over an N times larger
batch, whatever the number of classes. The authors train the blocks greedily, one after another,
and the readout afterwards; here every block and the readout learn from every minibatch (pitfall 8
of algorithms.md: a stream cannot be replayed block by block).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from ..config import ConfigError
from ..data.loaders import TensorLoaders
from ..nn.dc import DCConvNet
from ..nn.mlp import widen_classifier
from ..objectives import DimensionalityCompression
from .registry import BuildContext, register_learner

__all__ = ["DCClassifier", "DCTemplate"]

PREDICTIONS = ("energy", "usual")


class DCClassifier(nn.Module):
    """DC features and a linear readout; ``forward`` gives the energy scores (``predict="energy"``)
    or the logits of one clean pass (``"usual"``)."""

    def __init__(self, features: DCConvNet, num_classes: int, *, head_dropout: float = 0.5, predict: str = "energy", seed: int = 0) -> None:
        super().__init__()
        self.features, self.classifier = features, nn.Linear(features.feature_size, num_classes)
        self.head_dropout, self.predict, self.seed = head_dropout, predict, seed

    max_classes = property(lambda self: self.classifier.out_features)

    def grow(self, num_classes: int) -> None:
        widen_classifier(self, num_classes)

    def energy(self, last: torch.Tensor) -> torch.Tensor:
        """Energy scores [B, C] from the last block's responses to the N copies, [B, N, ...]."""
        z = self.classifier(F.dropout(last.flatten(2), self.head_dropout, self.training))
        return z.pow(2).sum(1) / (last.shape[1] - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.predict == "usual":
            return self.classifier(self.features(x))
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        return self.energy(self.features.noisy_activities(x, g)[-1])


class DCTemplate(TensorLoaders, SupervisedTemplate):
    """Training step: one pass of the N noisy copies gives every block's DC loss and, on the last
    block's detached responses, the readout's energy scores (the minibatch's output, before the
    update); the loss is their sum, so no gradient crosses a block or enters one from the readout."""

    def forward(self) -> torch.Tensor:
        if not self.is_training:
            return super().forward()
        model: DCClassifier = self.model
        acts = model.features.noisy_activities(self.mb_x)
        self._dc_loss = model.features.compression_loss(acts)
        return model.energy(acts[-1].detach())

    def criterion(self) -> torch.Tensor:
        if not self.is_training:
            return super().criterion()
        return F.cross_entropy(self.mb_output, self.mb_y) + self._dc_loss


@register_learner("dc", takes_net=True, local_blocks=True)
def dc(
    ctx: BuildContext,
    copies: int = 10,
    dropout: float = 0.2,
    proj_dim: int = 32,
    head_dropout: float = 0.5,
    predict: str = "energy",
    standardize_input: bool = False,
    seed: int = 0,
) -> DCTemplate:
    """DC blocks on the recipe's conv ``net`` with an energy readout (``predict``: ``energy`` or ``usual``)."""
    if ctx.config.net == "mlp":
        raise ConfigError("learner 'dc' trains conv blocks: set strategy.net to vgg, resnet or mobilenet "
                          "(DC features on an MLP: the dc_lda learner, as in replay_free)")
    if predict not in PREDICTIONS:
        raise ConfigError(f"dc: 'predict' must be one of {', '.join(PREDICTIONS)}, got '{predict}'")
    try:
        features = DCConvNet(ctx.config.net, ctx.image_shape(), ctx.blocks(), DimensionalityCompression(), copies=copies,
                             dropout=dropout, proj_dim=proj_dim, standardize_input=standardize_input, seed=seed,
                             stages_per_block=ctx.config.stages_per_block)
    except ValueError as e:
        raise ConfigError(f"dc: {e}") from None
    model = DCClassifier(features, ctx.num_classes, head_dropout=head_dropout, predict=predict, seed=seed)
    return DCTemplate(model=model, optimizer=ctx.optimizer(model.parameters()), criterion=nn.CrossEntropyLoss(), **ctx.template_kwargs())
