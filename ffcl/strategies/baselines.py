"""Avalanche's own strategies as the baselines, on an MLP of the recipe's size.

Learners: ``mlp`` (Avalanche's Naive template: fine-tuning), ``cumulative`` (retrains on all data
seen so far), ``joint`` (Avalanche's JointTraining: one model on the whole stream at once, the
upper bound) and ``der`` (Buzzega et al. 2020), which need their own templates. Avalanche 0.6's
iCaRL is left out: it reads ``experience.benchmark``, which the current benchmark API no longer
sets. Plugins: ``ewc`` (Kirkpatrick et al. 2017), ``si`` (Zenke et al. 2017), ``lwf``
(Li and Hoiem 2017), ``replay`` (a buffer of M samples: reservoir, class- or experience-balanced),
``gem`` (Lopez-Paz and Ranzato 2017), ``agem`` (Chaudhry et al. 2019), ``gdumb`` (Prabhu et
al. 2020), ``mas`` (Aljundi et al. 2018) and ``lfl`` (Jung et al. 2016). All are Avalanche's
implementations; ffcl only wires them to recipes.

Avalanche plugins that cannot work with these learners are refused with one line
(:func:`check_bp_plugins`), as ffcl.strategies.ff_template refuses those that cannot work with FF
learners.
"""

from __future__ import annotations

import inspect
from typing import Any

from avalanche.models import BaseModel
from avalanche.training import DER, Cumulative, GenerativeReplay, JointTraining
from avalanche.training.plugins import (
    AGEMPlugin,
    BiCPlugin,
    CoPEPlugin,
    EWCPlugin,
    FeatureDistillationPlugin,
    GDumbPlugin,
    GEMPlugin,
    LFLPlugin,
    LwFPlugin,
    MASPlugin,
    ReplayPlugin,
    SynapticIntelligencePlugin,
)
from avalanche.training.storage_policy import (
    ClassBalancedBuffer,
    ExperienceBalancedBuffer,
    ReservoirSamplingBuffer,
)
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import get_last_fc_layer
import torch
from torch import nn
from torch.optim.lr_scheduler import MultiStepLR

from ..config import ConfigError
from ..data.loaders import ReplayTensorLoader, TensorLoaders, dataset_tensors
from ..data.streams import experience_classes
from ..nn import MLP
from ..nn.ff import FFNet
from .heads import MultiHeadNet, TaskAwareLwF
from .registry import BuildContext, register_learner, register_plugin

# Avalanche's feature-based plugins (LFLPlugin) accept only models that are a ``BaseModel``: ffcl's
# networks with ``get_features`` are registered as such here, so ffcl.nn itself needs no Avalanche.
BaseModel.register(MLP)
BaseModel.register(FFNet)
BaseModel.register(MultiHeadNet)

# --------------------------------------------------------------------------- plugins these learners refuse

BP_UNSUPPORTED: dict[type, str] = {  # Avalanche plugins that cannot work with the back-propagation learners, and why
    FeatureDistillationPlugin: "distils the feature tensor a network stores as `model.features` in its forward, and sets "
                               "`model.features` to None after each experience: ffcl's networks keep their feature "
                               "extractor module under that name, which the plugin would delete",
}
if "verbose" not in inspect.signature(MultiStepLR.__init__).parameters:
    BP_UNSUPPORTED[BiCPlugin] = (
        f"cannot run with torch {torch.__version__}: its bias-correction step passes MultiStepLR a 'verbose' argument "
        "this torch no longer takes (and on streams built by class_incremental_benchmark, ffcl's included, it cannot "
        "replace experience.dataset, which Avalanche 0.6 makes read-only)"
    )


def check_bp_plugins(plugins: list[Any], model: nn.Module) -> None:
    """One clear error for an Avalanche plugin that cannot work with a back-propagation learner on ``model``."""
    for p in plugins:
        reason = next((why for kind, why in BP_UNSUPPORTED.items() if isinstance(p, kind)), None)
        if isinstance(p, LFLPlugin) and not isinstance(model, BaseModel):
            reason = (f"needs a network with get_features (an Avalanche BaseModel), and {type(model).__name__} "
                      "has none: use net = \"mlp\"")
        if isinstance(p, CoPEPlugin) and not p.initialized:  # once training started, CoPE has wrapped that layer
            try:
                outputs = get_last_fc_layer(model)[1].out_features
            except ValueError:
                outputs = None
            if outputs is None:
                reason = f"turns the network's last linear layer into its embedding, and {type(model).__name__} has none"
            elif p.p_size != outputs:
                reason = (f"puts its prototypes in the output space of the network's last linear layer ({outputs} "
                          f"outputs), so its p_size must be {outputs}, not {p.p_size}")
            elif p.n_classes < outputs:
                reason = f"predicts among n_classes = {p.n_classes} classes, fewer than the network's {outputs}"
        if reason:
            raise ConfigError(f"{type(p).__name__} {reason}.")


# --------------------------------------------------------------------------- learners


class TensorNaive(TensorLoaders, SupervisedTemplate):
    """Avalanche's plain template, loading minibatches from device-resident tensors."""

    def _before_training(self, **kwargs: Any) -> None:
        check_bp_plugins(self.plugins, self.model)  # also those appended after the strategy was built
        super()._before_training(**kwargs)


class TensorCumulative(TensorLoaders, Cumulative):
    """Avalanche's Cumulative, loading minibatches from device-resident tensors."""


class TensorJoint(TensorLoaders, JointTraining):
    """Avalanche's JointTraining, loading minibatches from device-resident tensors."""


def _bp(ctx: BuildContext, template: type[SupervisedTemplate], **kwargs: object) -> SupervisedTemplate:
    """An Avalanche template training a fresh back-propagation network (the recipe's ``net``) with cross-entropy."""
    model = ctx.bp_net()
    check_bp_plugins(ctx.plugins, model)
    return template(
        model=model, optimizer=ctx.optimizer(model.parameters()), criterion=nn.CrossEntropyLoss(),
        **kwargs, **ctx.template_kwargs(),
    )


@register_learner("mlp", takes_net=True)
def mlp(ctx: BuildContext) -> SupervisedTemplate:
    """Back-propagation MLP trained by Avalanche's plain template (Naive unless plugins are added)."""
    return _bp(ctx, TensorNaive)


@register_learner("cumulative", takes_net=True)
def cumulative(ctx: BuildContext) -> SupervisedTemplate:
    """Retrain on the union of all experiences seen so far (stores everything)."""
    return _bp(ctx, TensorCumulative)


@register_learner("joint", takes_net=True)
def joint(ctx: BuildContext) -> SupervisedTemplate:
    """Train once on the whole stream (Avalanche's JointTraining): the offline upper bound."""
    return _bp(ctx, TensorJoint)


@register_learner("der", takes_net=True)
def der(ctx: BuildContext, mem_size: int = 500, alpha: float = 0.1, beta: float = 0.5, batch_size_mem: int | None = None) -> SupervisedTemplate:
    """Dark Experience Replay++: replay of samples and of the logits they had when stored."""
    return _bp(ctx, DER, mem_size=mem_size, alpha=alpha, beta=beta, batch_size_mem=batch_size_mem)


# --------------------------------------------------------------------------- plugins


@register_plugin("ewc")
def ewc(ctx: BuildContext, ewc_lambda: float = 1e4, mode: str = "separate", decay_factor: float | None = None) -> EWCPlugin:
    """Elastic Weight Consolidation: a quadratic penalty weighted by the Fisher information."""
    return EWCPlugin(ewc_lambda=ewc_lambda, mode=mode, decay_factor=decay_factor)


class SI(SynapticIntelligencePlugin):
    """Avalanche's Synaptic Intelligence with its weight snapshots copied.

    Avalanche 0.6 stores each snapshot as ``param.detach().cpu().flatten()``, which on the CPU is a
    view of the parameter itself: the weights before an update always equal those after it, so the
    path integral and the penalty's anchor never move and SI does nothing there (its accuracy
    matrices equalled naive fine-tuning's to the last digit). Here the two snapshots a penalty
    depends on, the weights before each update and those at the start of an experience, are
    copies; everything else is Avalanche's."""

    def _copy_weights(self, model: nn.Module, target: Any) -> None:
        with torch.no_grad():
            for name, param in SynapticIntelligencePlugin.allowed_parameters(model, self.excluded_parameters):
                target[name].data = param.detach().flatten().clone().cpu()

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        self._copy_weights(strategy.model, self.ewc_data[0])  # the anchor of this experience's penalty

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_iteration(strategy, **kwargs)
        self._copy_weights(strategy.model, self.syn_data["old_theta"])  # the weights before this update


@register_plugin("si")
def si(ctx: BuildContext, si_lambda: float = 1.0, eps: float = 1e-7) -> SynapticIntelligencePlugin:
    """Synaptic Intelligence: a quadratic penalty weighted by each parameter's path integral
    (Avalanche's, its weight snapshots copied: :class:`SI`)."""
    return SI(si_lambda=si_lambda, eps=eps)


@register_plugin("lwf")
def lwf(ctx: BuildContext, alpha: float = 1.0, temperature: float = 2.0) -> LwFPlugin:
    """Learning without Forgetting: distil the previous model's outputs on the new data (every old
    task's outputs in task-incremental learning; ffcl.strategies.heads.TaskAwareLwF)."""
    return TaskAwareLwF(alpha=alpha, temperature=temperature)


BUFFERS = {
    "reservoir": lambda m: ReservoirSamplingBuffer(max_size=m),
    "class_balanced": lambda m: ClassBalancedBuffer(max_size=m, adaptive_size=True),
    "experience_balanced": lambda m: ExperienceBalancedBuffer(max_size=m, adaptive_size=True),
}


class Replay(ReplayPlugin):
    """Avalanche's ReplayPlugin (its buffers and update rule); for templates with tensor loaders the
    replay minibatches are sliced from resident tensors (:class:`~ffcl.data.loaders.ReplayTensorLoader`)."""

    def before_training_exp(self, strategy: Any, num_workers: int = 0, shuffle: bool = True, drop_last: bool = False, **kwargs: Any) -> None:
        if not isinstance(strategy, TensorLoaders):
            return super().before_training_exp(strategy, num_workers=num_workers, shuffle=shuffle, drop_last=drop_last, **kwargs)
        if len(self.storage_policy.buffer) == 0:  # first experience: nothing to replay yet
            return
        strategy.dataloader = ReplayTensorLoader(
            dataset_tensors(strategy.adapted_dataset, strategy.device),
            dataset_tensors(self.storage_policy.buffer, strategy.device),
            self.batch_size or strategy.train_mb_size,
            self.batch_size_mem or strategy.train_mb_size,
            drop_last=drop_last,
        )

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """The buffer update of Avalanche's plugin, through the storage policy's ``post_adapt``: its own
        call goes through the deprecated ``update``, which warns on every experience and sets a global
        warnings filter."""
        self.storage_policy.post_adapt(strategy, strategy.experience)


@register_plugin("replay")
def replay(ctx: BuildContext, mem_size: int = 500, policy: str = "class_balanced", batch_size_mem: int | None = None) -> ReplayPlugin:
    """Experience replay from a buffer of ``mem_size`` stored samples; each minibatch is joined by
    ``batch_size_mem`` buffer samples (default: as many as the minibatch)."""
    if mem_size < 1:
        raise ConfigError(f"plugin 'replay': 'mem_size' must be >= 1, got {mem_size}")
    if policy not in BUFFERS:
        raise ConfigError(f"plugin 'replay': 'policy' must be one of {', '.join(BUFFERS)}; got '{policy}'")
    return Replay(  # batch sizes left unset follow the strategy's minibatch (also after `ffcl adapt --online`)
        mem_size=mem_size, batch_size=None, batch_size_mem=batch_size_mem, storage_policy=BUFFERS[policy](mem_size)
    )


@register_plugin("gem")
def gem(ctx: BuildContext, patterns_per_experience: int = 256, memory_strength: float = 0.5) -> GEMPlugin:
    """Gradient Episodic Memory: project the gradient so no stored experience's loss rises."""
    return GEMPlugin(patterns_per_experience=patterns_per_experience, memory_strength=memory_strength)


class AGEM(AGEMPlugin):
    """Avalanche's A-GEM projection, with its memory held as tensors.

    Avalanche's plugin draws memory samples from an endless DataLoader iterator: a generator,
    which a checkpoint cannot pickle, and a per-sample fetch every iteration. Here each
    experience's stored patterns are whole tensors and a reference batch is an index draw from
    them (``sample_size`` split evenly over the stored experiences, as Avalanche does).

    ``per_block``: project each block's gradient on its own (a network with ``blocks``, the FF
    learners): FF blocks learn from local losses, so each block's update is checked against the
    reference gradient of that block alone, instead of one projection of the whole vector.
    """

    def __init__(self, patterns_per_experience: int, sample_size: int, per_block: bool = False) -> None:
        super().__init__(patterns_per_experience, sample_size)
        self.buffer_dliter = None
        self.memory: list[list[torch.Tensor]] = []
        self.per_block = per_block

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        if not self.per_block or not self.memory:
            return super().after_backward(strategy, **kwargs)
        blocks = getattr(strategy.model, "blocks", None)
        if blocks is None:
            raise ConfigError("plugin 'agem': per_block needs a network made of blocks (an FF learner)")
        offsets, start = {}, 0  # where each parameter sits in the reference gradient vector
        for name, p in strategy.model.named_parameters():
            offsets[id(p)] = (start, p.numel())
            start += p.numel()
        with torch.no_grad():
            for block in blocks:
                params = [p for p in block.parameters() if p.grad is not None]
                g = torch.cat([p.grad.flatten() for p in params])
                r = torch.cat([self.reference_gradients[offsets[id(p)][0] : sum(offsets[id(p)])] for p in params])
                dot = torch.dot(g, r)
                if dot < 0:  # this block's update would raise the memory loss: remove that component
                    g = g - r * (dot / torch.dot(r, r))
                    for p, piece in zip(params, g.split([p.numel() for p in params])):
                        p.grad.copy_(piece.view_as(p))

    def sample_from_memory(self) -> list[torch.Tensor]:
        per = max(1, self.sample_size // len(self.memory))
        picks = [[t[idx] for t in m] for m in self.memory for idx in [torch.randint(len(m[0]), (per,), device=m[0].device)]]
        return [torch.cat(parts) for parts in zip(*picks)]

    @torch.no_grad()
    def update_memory(self, dataset: Any, num_workers: int = 0, **kwargs: Any) -> None:
        x, y, t = dataset_tensors(dataset)
        keep = torch.randperm(len(x))[: self.patterns_per_experience]
        self.memory.append([x[keep], y[keep], t[keep]])
        self.buffers = self.memory  # Avalanche's hooks test len(self.buffers) for "memory exists"


@register_plugin("agem")
def agem(ctx: BuildContext, patterns_per_experience: int = 256, sample_size: int = 256, per_block: bool = False) -> AGEMPlugin:
    """Averaged GEM: one projection against the average gradient of a memory sample
    (``per_block``: one projection per FF block)."""
    return AGEM(patterns_per_experience=patterns_per_experience, sample_size=sample_size, per_block=per_block)


@register_plugin("gdumb")
def gdumb(ctx: BuildContext, mem_size: int = 500) -> GDumbPlugin:
    """GDumb: keep a class-balanced buffer and retrain from scratch on it after each experience."""
    return GDumbPlugin(mem_size=mem_size)


@register_plugin("mas")
def mas(ctx: BuildContext, lambda_reg: float = 1.0, alpha: float = 0.5) -> MASPlugin:
    """Memory Aware Synapses (Aljundi et al. 2018): a quadratic penalty weighted by each parameter's effect on the output norm."""
    return MASPlugin(lambda_reg=lambda_reg, alpha=alpha)


class LFL(LFLPlugin):
    """Avalanche's LFLPlugin for an output layer sized for every class from the start, as ffcl's are.

    LFL adds the mean squared distance between the network's ``get_features`` and the previous
    model's to the loss, and after each experience freezes the last linear layer (the classifier).
    In the SFFA paper's protocol that layer is Avalanche's ``IncrementalClassifier``, which is
    rebuilt, trainable, whenever an experience brings new classes, so it stays frozen only through
    experiences that bring none (domain-incremental streams, or more data of known classes). ffcl's
    output layer is never rebuilt: frozen for good, the rows of every class that arrives later would
    keep their random initialisation (0% on the second half of split digits). So this plugin
    unfreezes that layer before an experience that brings a class not seen before, as the rebuilt
    layer would be; the feature penalty and everything else are Avalanche's."""

    def __init__(self, lambda_e: float | list[float]) -> None:
        super().__init__(lambda_e)
        self.seen: set[int] = set()  # the classes of the experiences trained so far

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        classes = set(experience_classes(strategy.experience))
        if not classes <= self.seen:
            for p in get_last_fc_layer(strategy.model)[1].parameters():
                p.requires_grad = True
        self.seen |= classes


@register_plugin("lfl")
def lfl(ctx: BuildContext, lambda_e: float = 1e-4) -> LFLPlugin:
    """Less-Forgetful Learning (Jung et al. 2016): features kept near the previous model's, the classifier frozen unless new classes come."""
    return LFL(lambda_e=lambda_e)


@register_learner("dgr", takes_net=True)
def dgr(ctx: BuildContext, replay_size: int | None = None, increasing_replay_size: bool = False) -> SupervisedTemplate:
    """Deep Generative Replay (Shin et al. 2017), Avalanche's ``GenerativeReplay``: the MLP learns
    from each minibatch joined by images its VAE generator (Avalanche's default ``MlpVAE``, itself
    trained with generative replay) draws of the earlier classes, labelled by the previous model.
    No image is stored; generated ones are replayed. Avalanche's generator is built for 1x28x28 images."""
    if tuple(ctx.input_shape) != (1, 28, 28):
        raise ConfigError(f"learner 'dgr': Avalanche's default generator takes 1x28x28 images (MNIST, Fashion-MNIST), not {'x'.join(map(str, ctx.input_shape))}")
    model = ctx.bp_net()
    check_bp_plugins(ctx.plugins, model)
    return GenerativeReplay(
        model=model, optimizer=ctx.optimizer(model.parameters()), criterion=nn.CrossEntropyLoss(),
        replay_size=replay_size, increasing_replay_size=increasing_replay_size, **ctx.template_kwargs(),
    )
