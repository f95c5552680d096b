"""Statistics-based learners: features plus class-conditional Gaussians (``ffcl.readout``).

* ``slda``: streaming LDA on raw pixels or on a given feature extractor (Hayes and Kanan, CVPR-W
  2020; Avalanche's ``StreamingLDA`` model, with exact batched statistics).
* ``ncm``: the nearest class mean (Mensink et al., TPAMI 2013), the same with identity covariance.
* ``dc_lda``: label-free FF blocks trained by dimensionality compression (seeds/003) during the
  first ``feature_experiences`` experiences, then frozen, under a streaming-LDA readout: the
  features never change once class statistics depend on them, so no class is forgotten and no
  image is stored ("first-session adaptation", Panos et al., ICCV 2023, with an FF learner).
  ``feature_experiences = 0`` keeps the blocks at their random initialisation (the ablation).

All three are order-invariant once the features are frozen: any split (one class per
experience, uneven experiences, any class order, classes first seen mid-stream) gives the model
that all the data at once would give.
"""

from __future__ import annotations

import io
from typing import Any

import torch
from avalanche.training.plugins import (
    BiCPlugin,
    CoPEPlugin,
    CWRStarPlugin,
    FeatureDistillationPlugin,
    LFLPlugin,
    MASPlugin,
)
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from ..config import ConfigError
from ..data.loaders import TensorLoaders, dataset_tensors
from ..nn.dc import DCConvNet, DCNet
from ..nn.ff import NEG
from ..objectives import DimensionalityCompression
from ..readout import AUTO_SHRINKAGE, KINDS, ClassGaussians
from .ff_template import ScoreCrossEntropy
from .registry import BuildContext, register_learner

__all__ = ["GaussianClassifier", "GaussianTemplate", "check_plugins"]

UNSUPPORTED = {  # Avalanche plugins that cannot work with a statistics learner, and why
    LFLPlugin: "keeps features close through the training loss and freezes a linear classifier, and a statistics "
               "learner has neither: no loss trains it, and its classes are Gaussian statistics",
    BiCPlugin: "distils class logits through the training loss and holds samples out of training for its bias "
               "correction, and a statistics learner trains no loss and merges every sample into its class statistics",
    FeatureDistillationPlugin: "sets `model.features` to None after each experience, which would delete this "
                               "learner's feature extractor (and no loss trains it)",
    CoPEPlugin: "turns the network's last linear layer into an embedding trained by its own loss, and a statistics "
                "learner has no linear layer: its classes are Gaussian statistics",
    CWRStarPlugin: "consolidates the per-class rows of the network's last linear layer, and a statistics learner has "
                   "none: its class statistics are already exact for every class",
}


def check_plugins(plugins: list[Any], optimizer: torch.optim.Optimizer | None) -> None:
    """One clear error for an Avalanche plugin that cannot work with a statistics learner
    (``optimizer``: the learner's, None when no parameter trains)."""
    for p in plugins:
        reason = next((why for kind, why in UNSUPPORTED.items() if isinstance(p, kind)), None)
        if isinstance(p, MASPlugin) and optimizer is None:
            reason = ("weighs parameters by their gradients, computed with the strategy's optimiser, and this learner "
                      "trains no parameter (it has no optimiser): its class statistics forget nothing")
        if reason:
            raise ConfigError(f"{type(p).__name__} {reason}.")


class GaussianClassifier(nn.Module):
    """``features`` (any module mapping images to vectors) followed by class-conditional Gaussians."""

    def __init__(self, features: nn.Module, readout: ClassGaussians) -> None:
        super().__init__()
        self.features, self.readout = features, readout

    @property
    def max_classes(self) -> int:
        return self.readout.num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.readout.counts.any()):  # nothing learnt yet (a fixed map may not be fitted yet): all NEG
            return x.new_full((len(x), self.readout.num_classes), NEG, dtype=torch.float32)
        return self.readout(self.features(x).flatten(1))

    def grow(self, num_classes: int) -> None:
        self.readout.grow(num_classes)

    def kept_bytes(self) -> dict[str, int]:
        """What the learner keeps instead of images: bytes per class, and bytes shared by all classes
        (the covariance and the feature extractor's parameters and buffers)."""
        features = sum(t.numel() * t.element_size() for t in [*self.features.parameters(), *self.features.buffers()])
        return {"per_class": self.readout.bytes_per_class(), "shared": self.readout.bytes_shared() + features}


class GaussianTemplate(TensorLoaders, SupervisedTemplate):
    """Avalanche template for :class:`GaussianClassifier`.

    An experience is one pass that merges each minibatch's features into the class statistics
    (the minibatch is scored first, so training accuracy is measured before the model saw the
    samples). If the feature extractor has a ``local_loss`` and fewer than ``feature_experiences``
    experiences have trained it, the experience instead trains the features for the recipe's
    epochs (its optimiser on the local loss, no back-propagation across blocks) and then merges
    the experience's statistics with the trained features (its training accuracy then reads what
    the model knew before the experience: 0 for classes it brings). A fixed feature map with a
    ``fit_input`` method (``randumb``'s random Fourier features) is fitted once, to the first
    experience's images, before their statistics are taken.
    """

    STATS_BATCH = 4096  # minibatch of a statistics pass

    def __init__(self, *, model: GaussianClassifier, optimizer: torch.optim.Optimizer | None = None,
                 feature_experiences: int = 0, **kwargs: Any) -> None:
        if feature_experiences < 0:
            raise ConfigError(f"feature_experiences must be >= 0, got {feature_experiences}")
        if feature_experiences and not hasattr(model.features, "local_loss"):
            raise ConfigError(f"feature_experiences = {feature_experiences}, but {type(model.features).__name__} has no local loss to train")
        check_plugins(kwargs.get("plugins") or [], optimizer)
        kwargs.setdefault("criterion", ScoreCrossEntropy())
        super().__init__(model=model, optimizer=optimizer, **kwargs)  # type: ignore[arg-type]
        self.feature_experiences = feature_experiences
        self.features_trained = 0  # experiences that have trained the features so far

    def learner_state(self) -> dict[str, int]:
        """The counter ``learner.pt`` keeps (ffcl.protocols.LearnerFileState)."""
        return {"features_trained": self.features_trained}

    def load_learner_state(self, state: dict[str, int]) -> None:
        self.features_trained = int(state.get("features_trained", self.features_trained))

    def _before_training(self, **kwargs: Any) -> None:
        check_plugins(self.plugins, self.optimizer)  # also those appended after the strategy was built
        super()._before_training(**kwargs)

    @torch.no_grad()
    def _before_training_exp(self, **kwargs: Any) -> None:
        super()._before_training_exp(**kwargs)  # adapts the experience's dataset
        features = self.model.features  # a fixed map fitted to its input once (randumb): on the first experience's images
        if callable(getattr(features, "fit_input", None)) and not bool(features.fitted):
            try:
                features.fit_input(dataset_tensors(self.adapted_dataset, self.device)[0])
            except ValueError as e:
                raise ConfigError(str(e)) from None

    @property
    def training_features(self) -> bool:
        return self.is_training and self.features_trained < self.feature_experiences

    def make_train_dataloader(self, shuffle: bool = True, drop_last: bool = False, **kwargs: Any) -> None:
        super().make_train_dataloader(shuffle=shuffle, drop_last=drop_last, **kwargs)
        # statistics only: the batch size does not change them, but each batch is scored first (one
        # covariance solve each), so take large batches, unless the readout reuses its factor
        # (covariance_refresh): then every minibatch is predicted with the statistics of all before it
        if not self.training_features and not self.model.readout.refresh_every:
            self.dataloader.batch_size = max(self.train_mb_size, self.STATS_BATCH)

    def make_optimizer(self, **kwargs: Any) -> None:
        if self.optimizer is not None:
            super().make_optimizer(**kwargs)

    def model_adaptation(self, model: nn.Module | None = None) -> nn.Module:
        model = super().model_adaptation(model)
        if not self.training_features:
            model.eval()  # frozen features: no dropout or batch-norm updates while statistics are taken
        return model

    def training_epoch(self, **kwargs: Any) -> None:
        if self.training_features:
            return super().training_epoch(**kwargs)
        if self.clock.train_exp_epochs:  # statistics: one pass per experience
            return
        self.model.readout.reuse_factor = True  # scoring each batch may reuse the covariance factor (covariance_refresh)
        try:
            for self.mbatch in self.dataloader:  # Avalanche's loop without backward and update
                if self._stop_training:
                    break
                self._unpack_minibatch()
                self._before_training_iteration(**kwargs)
                self._before_forward(**kwargs)
                self.mb_output = self.forward()
                self._after_forward(**kwargs)
                self.loss = self.criterion()
                self._after_training_iteration(**kwargs)
        finally:
            self.model.readout.reuse_factor = False

    def forward(self) -> torch.Tensor:
        if not self.is_training:
            return super().forward()
        model: GaussianClassifier = self.model
        if self.training_features:
            self._local = model.features.local_loss(self.mb_x)
            with torch.no_grad():
                return model(self.mb_x)
        with torch.no_grad():
            f = model.features(self.mb_x).flatten(1)
            scores = model.readout(f)
            model.readout.update(f, self.mb_y)
        return scores

    def criterion(self) -> torch.Tensor:
        if self.training_features:
            return self._local
        with torch.no_grad():
            return super().criterion()

    @torch.no_grad()
    def _after_training_exp(self, **kwargs: Any) -> None:
        if self.training_features:  # the features are final for this experience: now take its statistics
            model: GaussianClassifier = self.model
            model.eval()
            x, y, _ = dataset_tensors(self.adapted_dataset, self.device)
            for bx, by in zip(x.split(self.eval_mb_size), y.split(self.eval_mb_size)):
                model.readout.update(model.features(bx).flatten(1), by)
            self.features_trained += 1
        super()._after_training_exp(**kwargs)


def _readout(ctx: BuildContext, dim: int, kind: str, shrinkage: float | str, refresh_every: int = 0) -> ClassGaussians:
    if kind not in KINDS:
        raise ConfigError(f"readout must be one of {', '.join(KINDS)}, got '{kind}'")
    if isinstance(shrinkage, str) and shrinkage not in AUTO_SHRINKAGE:
        raise ConfigError(f"shrinkage must be a number in [0, 1] or \"oas\" (set from the statistics), got '{shrinkage}'")
    if not isinstance(shrinkage, str) and not 0 <= shrinkage <= 1:
        raise ConfigError(f"shrinkage must lie in [0, 1] (or be \"oas\", set from the statistics), got {shrinkage}")
    if refresh_every < 0:
        raise ConfigError(f"covariance_refresh must be >= 0 (0: refactor the covariance after every update), got {refresh_every}")
    return ClassGaussians(dim, ctx.num_classes, kind, shrinkage, refresh_every)


class ScriptedFeatures(nn.Module):
    """A TorchScript feature extractor that a checkpoint can hold: pickled as its ``torch.jit.save``
    archive (a ScriptModule itself cannot be pickled), loaded back with ``torch.jit.load``. Its
    parameters stay in the state dict (``module.*``), so the weights-only learner file keeps them."""

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def __getstate__(self) -> dict[str, Any]:
        buf = io.BytesIO()
        torch.jit.save(self.module, buf)
        state = {**self.__dict__, "_modules": {k: v for k, v in self._modules.items() if k != "module"}}
        return {**state, "_archive": buf.getvalue()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        archive = state.pop("_archive")
        self.__dict__.update(state)
        self._modules["module"] = torch.jit.load(io.BytesIO(archive))


@register_learner("slda")
def slda(ctx: BuildContext, shrinkage: float | str = "oas", feature_extractor: str = "", covariance_refresh: int = 0) -> GaussianTemplate:
    """Streaming LDA on raw pixels, or on the features of a TorchScript module saved at
    ``feature_extractor`` (``torch.jit.save``; loaded without unpickling). ``covariance_refresh``:
    samples merged before the covariance is factored again (0: after every update; see ffcl.readout)."""
    features: nn.Module = nn.Flatten()
    dim = int(torch.tensor(ctx.input_shape).prod())
    if feature_extractor:
        try:
            features = ScriptedFeatures(torch.jit.load(feature_extractor, map_location=ctx.device))
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"slda: cannot load feature_extractor '{feature_extractor}' as a TorchScript module ({type(e).__name__}); save it with torch.jit.save") from None
        with torch.no_grad():
            dim = features(torch.zeros(1, *ctx.input_shape, device=ctx.device)).flatten(1).shape[1]
    model = GaussianClassifier(features, _readout(ctx, dim, "lda", shrinkage, covariance_refresh))
    return GaussianTemplate(model=model, **ctx.template_kwargs())


@register_learner("ncm")
def ncm(ctx: BuildContext) -> GaussianTemplate:
    """Nearest class mean on raw pixels."""
    model = GaussianClassifier(nn.Flatten(), _readout(ctx, int(torch.tensor(ctx.input_shape).prod()), "ncm", 0.0))
    return GaussianTemplate(model=model, **ctx.template_kwargs())


DC_TRAINING = {"copies": 10, "dropout": 0.2, "proj_dim": 100}  # dc_lda's arguments that only the feature training reads


@register_learner("dc_lda", takes_net=True, local_blocks=True)
def dc_lda(
    ctx: BuildContext,
    feature_experiences: int = 1,
    readout: str = "lda",
    shrinkage: float | str = "oas",
    copies: int = DC_TRAINING["copies"],
    dropout: float = DC_TRAINING["dropout"],
    proj_dim: int = DC_TRAINING["proj_dim"],
    standardize_input: bool = False,
    seed: int = 0,
    covariance_refresh: int = 0,
) -> GaussianTemplate:
    """Dimensionality-compression FF blocks (``hidden`` wide; on a conv ``net``, its stages with the
    last stage's output map as the features), trained during the first ``feature_experiences``
    experiences and then frozen, under a streaming Gaussian ``readout`` (``covariance_refresh`` as for ``slda``)."""
    hidden = ctx.blocks()
    common = dict(copies=copies, dropout=dropout, proj_dim=proj_dim, standardize_input=standardize_input, seed=seed)
    if not feature_experiences:
        unused = [k for k, default in DC_TRAINING.items() if common[k] != default]
        if unused:
            raise ConfigError(f"dc_lda: feature_experiences = 0 trains no features, so {', '.join(unused)} (read only by the "
                              "DC training) would be ignored: drop it or set feature_experiences >= 1")
    try:
        if ctx.config.net == "mlp":
            net: DCNet | DCConvNet = DCNet(ctx.input_shape, hidden, DimensionalityCompression(), **common)
        else:
            net = DCConvNet(ctx.config.net, ctx.image_shape(), hidden, DimensionalityCompression(),
                            stages_per_block=ctx.config.stages_per_block, **common)
    except ValueError as e:
        raise ConfigError(f"dc_lda: {e}") from None
    model = GaussianClassifier(net, _readout(ctx, net.feature_size, readout, shrinkage, covariance_refresh))
    optimizer = ctx.optimizer(net.parameters()) if feature_experiences else None
    return GaussianTemplate(model=model, optimizer=optimizer, feature_experiences=feature_experiences, **ctx.template_kwargs())
