"""The FF template: Avalanche's SupervisedTemplate with layer-local learning.

In training, ``forward`` runs the network on each image with its true label and K negative labels
stacked into the batch, and ``criterion`` is the sum of the blocks' local losses. What ``forward``
returns is the class scores of the minibatch before the update over the classes seen before it
(one no-grad pass, also what hardest negatives are drawn from), so Avalanche's training accuracy,
and ffcl's prequential accuracy, are the real test-then-train accuracy. Because each
block's input is detached, one backward of that sum gives exactly the local gradients (design.md):
FF learning inside Avalanche's ordinary loop, so plugins that act on the loss or the gradients
(EWC, SI, GEM, A-GEM, replay) compose unchanged. ``update="blockwise"`` instead runs backward
block by block, freeing each block's graph at once (less memory; the same gradients).

Outside the training step (evaluation, and plugins that call ``model(x)``), the network returns
class scores over the classes seen so far, and ``_criterion`` is a cross-entropy over them: what
EWC's Fisher information and GEM's reference gradients are computed from. Plugins that distil
class logits during training (LwF) have no logits to read here and are refused.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.training.plugins import GDumbPlugin, LwFPlugin, MIRPlugin, RARPlugin, ReplayPlugin, RWalkPlugin
from avalanche.training.storage_policy import FeatureBasedExemplarsSelectionStrategy
from avalanche.training.templates import SupervisedTemplate

from ..allocation import hybrid_images
from ..config import ConfigError
from ..data.loaders import TensorLoaders
from ..data.streams import experience_classes
from ..nn.ff import NEG, FFNet
from .heads import task_mask_of

__all__ = ["FFTemplate", "ScoreCrossEntropy", "sample_negatives", "NEGATIVES", "TEMPLATE_OPTIONS", "template_signature"]

NEGATIVES = ("random", "hardest", "all")
UPDATES = ("fused", "blockwise", "overlap")

TEMPLATE_OPTIONS: dict[str, Any] = {
    "negatives": "random",
    "n_negatives": 1,
    "collaboration": False,
    "update": "fused",
    "hybrid_negatives": 0.0,
    "training_scores": True,
    "hard_candidates": 0,
    "cascade": (),
    "shortlist": 0,
}
"""The FF template's options and their defaults: what every FF learner takes under ``learner_args``
(ffcl.strategies.register_learner; a learner may change a default or refuse an option its objective
never reads). :func:`template_signature` checks this table against :class:`FFTemplate`'s own."""


class ScoreCrossEntropy(torch.nn.Module):
    """Cross-entropy over class scores. Inactive classes sit at ``NEG`` (-1e9) and drop out; for a
    sample whose own class is not seen yet, every inactive class scores as the lowest seen class
    instead, so the loss stays finite (about log of the number of classes) rather than 1e9."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        inactive = scores <= NEG / 2
        unseen = inactive.gather(1, y[:, None])  # [B, 1]: the sample's class has no score yet
        floor = scores.masked_fill(inactive, float("inf")).amin(1, keepdim=True)
        floor = floor.masked_fill(floor.isinf(), 0.0)  # nothing seen at all: every class alike
        scores = torch.where(inactive & unseen, floor, scores)  # always computed: no host synchronisation
        return F.cross_entropy(scores / self.temperature, y)


def sample_negatives(
    y: torch.Tensor, classes: torch.Tensor, k: int, mode: str = "random", scores: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """Wrong labels [B, K'] for true labels y, drawn from ``classes`` (the sorted candidate
    classes, which must hold every label of y).

    ``random``: K distinct wrong labels uniformly (never the true one, pitfall 5 of algorithms.md);
    ``hardest``: the K wrong labels with the highest ``scores`` [B, len(classes)];
    ``all``: every other class (K' = len(classes) - 1). K' = min(k, len(classes) - 1).
    ``allowed`` [B, num_classes] (task-incremental learning: the classes of each sample's task)
    restricts each sample's negatives to its allowed classes; K' is then k, which must not exceed
    any sample's allowed wrong labels (with ``all``, pass the smallest task's count).
    Index arithmetic only (no boolean masks): no host synchronisation on a GPU.
    """
    c = len(classes)
    j = torch.arange(c - 1, device=y.device)
    wrong = j + (j >= torch.searchsorted(classes, y)[:, None])  # [B, c-1]: positions of the other classes
    others = classes[wrong]
    if mode not in NEGATIVES:
        raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got '{mode}'")
    if mode == "hardest" and scores is None:
        raise ValueError("hardest negatives need the candidates' scores")
    if allowed is not None:  # rank the task's wrong labels first, by a random key or by score
        ok = allowed.gather(1, others)
        key = scores.gather(1, wrong) if mode == "hardest" else torch.rand(len(y), c - 1, device=y.device)
        return others.gather(1, key.masked_fill(~ok, float("-inf")).topk(min(k, c - 1), dim=1).indices)
    if mode == "all" or c - 1 <= k:
        return others
    if mode == "random":
        idx = torch.rand(len(y), c - 1, device=y.device).argsort(dim=1)[:, :k]
    else:
        idx = scores.gather(1, wrong).topk(k, dim=1).indices
    return others.gather(1, idx)


from avalanche.training.plugins import BiCPlugin, CoPEPlugin, CWRStarPlugin, FeatureDistillationPlugin, LFLPlugin  # noqa: E402

UNSUPPORTED = {  # Avalanche plugins that cannot work with layer-local learners, and why
    LwFPlugin: "distils class logits during training; FF learners train on goodness, not logits",
    RWalkPlugin: "scores parameters by the gradient of a cross-entropy over class logits from the first step, "
                 "which an FF network with no class seen yet does not have",
    MIRPlugin: "adds a cross-entropy on replayed samples' class scores, which back-propagates across the blocks",
    RARPlugin: "traces the network with torch.fx, which cannot trace an FF network's per-label passes",
    BiCPlugin: "distils class logits during training; FF learners train on goodness, not logits",
    LFLPlugin: "freezes the network's last linear layer (its classifier) after each experience to keep the decision "
               "boundaries, and an FF network has none: it decides by the goodness of per-label passes",
    FeatureDistillationPlugin: "distils a feature tensor the network stores as `model.features` in its forward, and an "
                               "FF network keeps none (its training passes are per label and never call forward)",
    CoPEPlugin: "turns the network's last linear layer into an embedding trained by back-propagation of its own loss, "
                "and an FF network has no such layer",
    CWRStarPlugin: "consolidates the per-class rows of the network's last linear layer, and an FF network has no such "
                   "layer: a class is a label pass through every block",
}


def check_plugins(plugins: list[Any]) -> None:
    """One clear error for an Avalanche plugin that cannot work with an FF learner."""
    for p in plugins:
        reason = next((why for kind, why in UNSUPPORTED.items() if isinstance(p, kind)), None)
        if isinstance(getattr(getattr(p, "storage_policy", None), "selection_strategy", None), FeatureBasedExemplarsSelectionStrategy):
            reason = "selects exemplars by features of a named layer; an FF block returns (activity, input of the next block)"
        if reason:
            raise ConfigError(f"{type(p).__name__} {reason}. With FF learners use replay (random or class-balanced), EWC, SI, MAS, GEM or A-GEM.")


def template_signature() -> dict[str, Any]:
    """The annotations of :class:`FFTemplate`'s options, after checking that :data:`TEMPLATE_OPTIONS`
    lists exactly those options with the same defaults (a ``TypeError`` names any difference)."""
    params = {p.name: p for p in inspect.signature(FFTemplate.__init__, eval_str=True).parameters.values()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("model", "optimizer")}
    table = {name: default for name, default in TEMPLATE_OPTIONS.items()}
    if table != {name: p.default for name, p in params.items()}:
        raise TypeError(f"TEMPLATE_OPTIONS {table} differ from FFTemplate's options "
                        f"{ {name: p.default for name, p in params.items()} }")
    return {name: p.annotation for name, p in params.items()}


class FFTemplate(TensorLoaders, SupervisedTemplate):
    """Avalanche template for :class:`~ffcl.nn.ff.FFNet` learners (minibatches from device-resident tensors).

    :param negatives: how wrong labels are chosen (``random``, ``hardest`` or ``all``).
    :param n_negatives: negatives per sample (K).
    :param collaboration: add the other layers' detached goodness to each layer's scores before
        its loss (layer collaboration, used by DF).
    :param update: ``fused`` (one backward of the summed local losses), ``blockwise`` (the same
        gradients, one block's graph alive at a time) or ``overlap``: the Trifecta's overlapping
        local updates (seeds/001, algorithms.md 2c): on even iterations the even blocks compute a
        loss, on odd ones the odd blocks, and each loss also reaches the block below it (whose output
        passes on undetached), so the gradient windows alternate between {0}, {1, 2}, {3, 4}, ...
        and {0, 1}, {2, 3}, ...
    :param hybrid_negatives: self-generated negatives per sample (``ffcl.allocation.hybrid_images``:
        two batch images of different classes blended through a blurred mask, shown as a negative
        with the labels of both).
    :param hard_candidates: with ``hardest`` negatives, score only this many random wrong labels per
        image and take the hardest of them (0: every seen class). Scoring costs a forward pass per
        candidate, so a few candidates buy most of the hard negatives' gain at a fraction of the cost;
        it needs ``training_scores = False`` (with it every class is scored anyway).
    :param training_scores: score every minibatch over the seen classes before the update, the
        output training metrics and prequential accuracy read. That pass costs C candidate passes per
        image, more than the update itself on a conv net; ``False`` skips it unless hardest negatives
        need it, and the training output is then all ``NEG`` (no training accuracy; online runs,
        which report prequential accuracy, refuse it).
    :param cascade: candidates kept after each block but the last when scoring (evaluation, the
        training-time scoring pass, hardest negatives): after block i only the ``cascade[i]`` labels
        with the best score so far run through the deeper blocks (:meth:`FFNet.set_cascade
        <ffcl.nn.ff.FFNet.set_cascade>`); empty (the default): every seen class through every block.
    :param shortlist: where candidates are scored, only this many of them, those whose class mean of
        the training images lies nearest the image, enter the first block (:meth:`FFNet.set_shortlist
        <ffcl.nn.ff.FFNet.set_shortlist>`; the means are exact streaming statistics, no stored image);
        0 (the default): every seen class. With ``cascade``, the first block's k is then at most this.
    """

    training_scores: bool = True  # class default: strategies checkpointed before the option existed still load

    hard_candidates: int = 0  # class default: strategies checkpointed before the option existed still load

    def __init__(
        self,
        *,
        model: FFNet,
        optimizer: torch.optim.Optimizer,
        negatives: str = "random",
        n_negatives: int = 1,
        collaboration: bool = False,
        update: str = "fused",
        hybrid_negatives: float = 0.0,
        training_scores: bool = True,
        hard_candidates: int = 0,
        cascade: list[int] = (),  # type: ignore[assignment]  (a tuple: an immutable default)
        shortlist: int = 0,
        **kwargs: Any,
    ) -> None:
        if negatives not in NEGATIVES:
            raise ConfigError(f"negatives must be one of {', '.join(NEGATIVES)}, got '{negatives}'")
        if update not in UPDATES:
            raise ConfigError(f"update must be one of {', '.join(UPDATES)}, got '{update}'")
        if n_negatives < 1:
            raise ConfigError(f"n_negatives must be >= 1, got {n_negatives}")
        if hybrid_negatives < 0:
            raise ConfigError(f"hybrid_negatives must be >= 0, got {hybrid_negatives}")
        if hard_candidates and (negatives != "hardest" or training_scores or hard_candidates < n_negatives):
            raise ConfigError(f"hard_candidates = {hard_candidates} needs negatives = 'hardest', training_scores = false and "
                              f"at least n_negatives ({n_negatives}) candidates; set it to 0 to score every class")
        check_plugins(kwargs.get("plugins") or [])
        try:
            model.set_cascade(cascade)
            model.set_shortlist(shortlist)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        kwargs.setdefault("criterion", ScoreCrossEntropy())
        super().__init__(model=model, optimizer=optimizer, **kwargs)
        self.negatives, self.n_negatives = negatives, n_negatives
        self.collaboration, self.update = collaboration, update
        self.hybrid_negatives = hybrid_negatives
        self.training_scores = training_scores
        self.hard_candidates = hard_candidates
        self._acts: list[torch.Tensor] | None = None
        self._labels: torch.Tensor | None = None
        self._hybrid: tuple[torch.Tensor, torch.Tensor] | None = None

    def _before_training_exp(self, **kwargs: Any) -> None:
        check_plugins(self.plugins)  # also those appended after the strategy was built
        classes = experience_classes(self.experience)
        if len(classes) == 1 and getattr(self.experience, "is_first_subexp", True) and not any(
            isinstance(p, (ReplayPlugin, GDumbPlugin)) for p in self.plugins
        ):
            warnings.warn(
                f"experience {self.clock.train_exp_counter} holds one class ({classes[0]}) and no stored data: an FF learner "
                "contrasts labels and learns almost nothing from one class alone (11-22% on Split-MNIST 10x1). "
                "Use the replay_free recipe, which learns from one class at a time, or add replay.",
                stacklevel=2,
            )
        super()._before_training_exp(**kwargs)

    # ---------------------------------------------------------------- the local training step

    def _before_training_epoch(self, **kwargs: Any) -> None:
        self._plan = None
        labels = self.training_labels()  # all the loader's labels, once: then no training step synchronises
        if labels is not None:
            self._plan = self._class_plan(labels)
        super()._before_training_epoch(**kwargs)

    def _class_plan(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inference candidates, negative candidates) for minibatches whose labels are among ``labels``:
        the classes seen so far and these labels; negatives only from those whose neurons still learn
        (neuron allocation freezes old classes), unless a label is frozen itself (replay)."""
        model: FFNet = self.model
        seen = model.active.clone()
        seen[labels] = True
        active = seen.nonzero().flatten()
        if model.frozen[labels].any():
            return active, active
        return active, (seen & ~model.frozen).nonzero().flatten()

    def forward(self) -> torch.Tensor:
        if not self.is_training:
            return super().forward()
        model: FFNet = self.model
        x, y = self.mb_x, self.mb_y
        known = model.active.clone()  # the classes seen before this minibatch: the only candidates of its output
        model.activate(y)
        # a loader that is not ffcl's: the candidates from this minibatch's labels (a host synchronisation per step)
        active, classes = getattr(self, "_plan", None) or self._class_plan(y)
        output, scores = x.new_full((len(y), model.max_classes), NEG), None
        if self.training_scores or (self.negatives == "hardest" and not self.hard_candidates):
            with torch.no_grad():  # class scores before the update (sparse path where it exists): the output
                seen = model.chunked_scores(x, active.expand(len(y), -1))  # training metrics read, and hardest negatives
            output[:, active] = seen
            output.masked_fill_(~known, NEG)  # no label of this minibatch may leak into its own predictions (prequential)
            scores = seen[:, torch.searchsorted(active, classes)] if self.negatives == "hardest" else None
        n_negatives, candidates, allowed = self.n_negatives, self.hard_candidates, None
        task_mask = task_mask_of(self)
        if task_mask is not None:  # task-incremental: negatives from each sample's own task only
            allowed = task_mask.allowed(self.mb_task_id, model.max_classes)
            wrong = task_mask.min_classes - 1
            n_negatives = wrong if self.negatives == "all" else min(n_negatives, wrong)
            candidates = min(candidates, wrong)
        if self.hard_candidates:  # the hardest of a few random wrong labels: a forward pass per candidate, not per class
            pool = sample_negatives(y, classes, candidates, "random", allowed=allowed)
            with torch.no_grad():
                pool_scores = model.chunked_scores(x, pool)
            negs = pool.gather(1, pool_scores.topk(min(n_negatives, pool.shape[1]), dim=1).indices)
        else:
            negs = sample_negatives(y, classes, n_negatives, self.negatives, scores, allowed)
        model.observe(x, y)  # after this minibatch was scored: its labels never reach its own predictions
        self._labels = torch.cat([y[:, None], negs], dim=1)
        self._hybrid = None
        n_hybrid = round(self.hybrid_negatives * len(y))
        if n_hybrid:
            idx = torch.randint(0, len(y), (n_hybrid,), device=y.device)
            images, partner = hybrid_images(x[idx], y[idx])
            self._hybrid = (images, torch.stack([y[idx], y[idx][partner]], dim=1))  # negative for both sources
        # fused/overlap: activities for the local losses now; blockwise: block by block in criterion()
        self._loss_blocks = self.loss_blocks(self.clock.train_iterations)
        detach = [i in self._loss_blocks for i in range(len(model.blocks))] if self.update == "overlap" else None
        depth = None if self.collaboration else max(self._loss_blocks) + 1  # no block above the last loss runs
        self._acts = None if self.update == "blockwise" else model.activities(x, self._labels, detach, depth)
        return output

    def loss_blocks(self, iteration: int) -> list[int]:
        """The blocks whose local losses count at a training iteration (all but with ``overlap``,
        where a single block has nothing to overlap with and learns at every iteration)."""
        blocks = range(len(self.model.blocks))
        if self.update != "overlap" or len(blocks) == 1:
            return list(blocks)
        return [i for i in blocks if i % 2 == iteration % 2]

    def _contexts(self, goodness: torch.Tensor) -> list[torch.Tensor | None]:
        """For layer collaboration: the detached goodness of all *other* layers, per layer."""
        if not self.collaboration:
            return [None] * goodness.shape[-1]
        g = goodness.detach()
        total = g.sum(-1)
        return [total - g[..., i] for i in range(g.shape[-1])]

    def _local_loss(self, block: torch.nn.Module, a: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """One block's loss: its objective (the positive activities' win rates also drive k-WTA boosting)."""
        block.update_duty(a[:, 0])
        return self.model.objective.loss(a, context)

    def criterion(self) -> torch.Tensor:
        if not self.is_training:
            return super().criterion()
        model: FFNet = self.model
        obj = model.objective
        hybrid = model.activities(*self._hybrid) if self._hybrid is not None else [None] * len(model.blocks)
        extra = sum(obj.negative_loss(h.flatten(0, 1)) for h in hybrid if h is not None)
        if self._labels.shape[1] < 2 and self._hybrid is None:  # one class and no negatives: nothing to contrast
            return sum(p.sum() * 0 for p in model.parameters())
        if self.update != "blockwise":
            contexts = self._contexts(model.goodness(self._acts))
            return extra + sum(self._local_loss(model.blocks[i], self._acts[i], contexts[i]) for i in self._loss_blocks)
        # blockwise: one block's graph alive at a time; same gradients as the fused sum
        x = model.encode(self.mb_x)
        contexts: list[torch.Tensor | None] = [None] * len(model.blocks)
        if self.collaboration:
            with torch.no_grad():
                contexts = self._contexts(model.goodness(model.activities(self.mb_x, self._labels)))
        if torch.is_tensor(extra):  # the hybrids' graphs span all blocks; free them first
            extra.backward()
            extra = extra.detach()
        total, below = torch.zeros((), device=x.device) + extra, None
        for block, ctx in zip(model.blocks, contexts):
            a, below = block(x, model.codes, self._labels, below)
            loss = self._local_loss(block, a, ctx)
            loss.backward()
            total = total + loss.detach()
        return total

    def backward(self) -> None:
        if self.is_training and self.update == "blockwise":
            # local losses were back-propagated in criterion(); plugins' penalties (EWC, SI) remain
            if self.loss.requires_grad:
                self.loss.backward(retain_graph=self.retain_graph)
            return
        super().backward()
