"""Sparsity-based neuron allocation: class-incremental FF learning without stored data.

SFFA's k-WTA makes a layer's activity sparse and its neurons class-specific (seeds/002). Neuron
allocation takes that to its end: every class *owns* a fixed block of positive and of negative
neurons in every layer, and the pass conditioned on label c keeps only the neurons c owns
(``FFBlock.mask``). Class c's score then depends on its own parameters only. When an experience
ends, the neurons of its classes are frozen (their gradients zeroed, and their weights restored
after every update, so optimiser momentum and weight decay cannot move them), so a class's score is
exactly the same after any later experience: no forgetting by construction. New classes take
blocks from the free pool.

What remains is cross-task calibration: a detector trained only against the other classes of its
own experience also fires on digits it never saw. Self-generated negatives fix much of that
without stored data (``hybrid_images``, used by the FF template's ``hybrid_negatives``): two images
of the current batch blended through a blurred random mask, shown with the first image's label as
a negative (Hinton 2022, section 3.2, used his hybrids as negative data).

The rule was chosen by measurement (algorithms.md section 10, one seed on Split-MNIST): choosing
neurons after training (the SFFA authors' unused ``compute_mask`` prototype) gave 29-38%; fixed
blocks from the start gave 60.6%, and with hybrid negatives at 1.0 per sample 81.5%; keeping old
classes' negative neurons trainable wiped old classes out (~20%). docs/allocation.md has ffcl's
own measurements.

Each hybrid is a negative for the classes of *both* its images, and its partner is drawn from
another class whenever the batch has one.

Capacity is reserved explicitly: ``max_classes`` (default: the stream's number of classes) splits
each half of a layer into that many blocks. A class arriving when the pool is empty gets no neurons
and a warning (raise ``max_classes`` or widen the layers); nothing crashes.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin

from .config import ConfigError
from .data.streams import experience_classes
from .nn.ff import FFNet

__all__ = ["NeuronAllocation", "hybrid_images"]


def hybrid_images(
    x: torch.Tensor, y: torch.Tensor | None = None, blur_steps: int = 6, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image with another image of the batch through a blurred random binary mask.

    The mask is uniform noise smoothed ``blur_steps`` times with a 3x3 mean filter and thresholded
    at its median, so large regions come from each image (Hinton 2022, section 3.2). Given labels
    ``y``, the partner is drawn from another class whenever the batch has one: a blend of two
    images of the same class is too close to a real positive to serve as a negative.
    Returns the hybrids and, for each, the index of its partner image.
    """
    b = x.shape[0]
    img = x if x.dim() == 4 else x.view(b, 1, 1, -1)
    noise = torch.rand(b, 1, *img.shape[2:], device=x.device, generator=generator)
    for _ in range(blur_steps):
        noise = F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    mask = (noise > noise.flatten(1).median(dim=1).values.view(b, 1, 1, 1)).to(x.dtype)
    pick = torch.rand(b, b, device=x.device, generator=generator)
    if y is not None:
        pick = pick - 2.0 * (y[:, None] == y[None, :])  # prefer partners of another class
    partner = pick.argmax(dim=1)
    return (mask * img + (1 - mask) * img[partner]).view_as(x), partner


class NeuronAllocation(SupervisedPlugin):
    """Give each class its own positive and negative neurons in every block; freeze them after
    the experience that taught the class (see the module docstring).

    :param max_classes: classes the layers are divided among (default: all the stream's classes).
    :param freeze: freeze a class's neurons after its experience (``False``: they keep learning,
        for use with replay, which still shows the old classes).
    """

    def __init__(self, max_classes: int | None = None, freeze: bool = True) -> None:
        super().__init__()
        self.max_classes = max_classes
        self.freeze_after_experience = freeze
        self.model: FFNet | None = None
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.new_classes: set[int] = set()

    recipe_key = "allocation"  # its name under a recipe's plugins (ffcl.protocols.ResolvesRecipe)

    def resolved_args(self) -> dict[str, Any]:
        """``max_classes`` as settled when attached (ffcl.protocols.ResolvesRecipe)."""
        return {"max_classes": self.max_classes}

    def run_summary(self) -> dict[str, Any]:
        """``metrics.json``'s ``allocation``: neurons per class and free capacity, per block
        (ffcl.protocols.RunSummary)."""
        return {"allocation": self.state()}

    # ------------------------------------------------------------------ set-up and allocation

    def attach(self, model: FFNet) -> None:
        if not isinstance(model, FFNet) or not all(b.split and hasattr(b, "units") for b in model.blocks):
            raise ConfigError(f"neuron allocation needs an SFFA network (positive and negative neurons), not a {type(model).__name__}: "
                              "use it with the sffa learner on an MLP, or drop [plugins.allocation]")
        self.model = model
        self.max_classes = self.max_classes or model.max_classes
        for block in model.blocks:
            if block.units // 2 < self.max_classes:
                raise ConfigError(f"neuron allocation: a block of {block.units} units cannot give {self.max_classes} classes "
                                  "a neuron each per half: widen strategy.hidden or lower plugins.allocation.max_classes")
            if block.owner is None or block.owner.shape != (block.units,):  # else keep them (a restored learner)
                block.owner = torch.full((block.units,), -1, dtype=torch.long, device=block.bias.device)
        # the weights frozen units are restored to after each update (a restored learner may have some already)
        self.snapshots = [{n: p.detach().clone() for n, p in block.named_parameters()} for block in model.blocks]

    def block_size(self, units: int) -> int:
        """Neurons a class owns in each half of a block of ``units`` neurons."""
        return units // 2 // self.max_classes

    def allocate(self, classes: list[int]) -> None:
        """Give every class that has no neurons yet a free block in each half of each layer."""
        for c in classes:
            for block in self.model.blocks:
                if (block.owner == c).any():
                    continue
                size, half = self.block_size(block.units), block.units // 2
                free = [i for i in range(self.max_classes) if (block.owner[i * size : (i + 1) * size] == -1).all()]
                if not free:
                    warnings.warn(
                        f"neuron allocation: no free neurons left for class {c} (capacity {self.max_classes} classes); "
                        "it gets no neurons and cannot be learnt. Raise max_classes or widen the layers.",
                        stacklevel=2,
                    )
                    break
                start = free[0] * size
                block.owner[start : start + size] = c  # positive neurons
                block.owner[half + start : half + start + size] = c  # negative neurons
            self.new_classes.add(c)

    def freeze(self, classes: set[int]) -> None:
        """Freeze every neuron the classes own: remember their weights, restore them after updates."""
        model = self.model
        model.frozen[list(classes)] = True
        for block, snap in zip(model.blocks, self.snapshots):
            for name, p in block.named_parameters():
                snap[name] = p.detach().clone()

    def frozen_units(self, block: Any) -> torch.Tensor:
        owned = block.owner.clamp(min=0)
        return (block.owner >= 0) & self.model.frozen[owned]

    def state(self) -> list[dict[str, Any]]:
        """Per block: neurons per class (per half), and free neurons left."""
        out = []
        for block in self.model.blocks:
            owners = block.owner[: block.units // 2]
            counts = {int(c): int((owners == c).sum()) for c in owners.unique() if c >= 0}
            out.append({"units": block.units, "neurons_per_class": counts, "free_neurons": int((block.owner == -1).sum())})
        return out

    # ------------------------------------------------------------------ Avalanche hooks

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        if self.model is not strategy.model:
            self.attach(strategy.model)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.model is None or not getattr(strategy.experience, "is_first_subexp", True):
            return
        seen = [c for c in experience_classes(strategy.experience) if c < len(self.model.frozen) and self.model.frozen[c]]
        if seen:
            warnings.warn(
                f"neuron allocation: classes {seen} were learnt in an earlier experience and are frozen; their "
                "new samples teach nothing. Allocation is for class-incremental streams (each class in one experience).",
                stacklevel=2,
            )

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        # once per epoch, so that no training step synchronises with the host: the loader's classes
        # get their neurons now (a loader that is not ffcl's: per minibatch), and the frozen units are fixed until freeze()
        labels = strategy.training_labels() if callable(getattr(strategy, "training_labels", None)) else None
        self._per_step = labels is None
        if labels is not None:
            self.allocate([c for c in labels.tolist() if not self.model.frozen[c]])
        self._frozen = [(m, bool(m.any())) for m in map(self.frozen_units, self.model.blocks)]

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        if getattr(self, "_per_step", True):
            self.allocate([int(c) for c in strategy.mb_y.unique() if not self.model.frozen[c]])

    def after_backward(self, strategy: Any, **kwargs: Any) -> None:
        for block, (frozen, some) in zip(self.model.blocks, self._frozen):
            if some:
                for p in block.parameters():
                    if p.grad is not None:
                        p.grad.masked_fill_(frozen, 0)  # frozen indexes the last dim (units)

    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        with torch.no_grad():
            for block, snap, (frozen, some) in zip(self.model.blocks, self.snapshots, self._frozen):
                if some:
                    for name, p in block.named_parameters():
                        p.copy_(torch.where(frozen, snap[name], p))

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        if self.freeze_after_experience and getattr(strategy.experience, "is_last_subexp", True) and self.new_classes:  # online: at the end of the origin experience
            self.freeze(self.new_classes)
            self.new_classes = set()
