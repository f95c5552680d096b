"""Outputs for task-incremental learning: the masked single head and Avalanche's multi-head classifier.

In task-incremental learning the task label is given at training and at test time, and a learner
predicts among its task's classes only (van de Ven, Tuytelaars and Tolias, "Three types of
incremental learning", Nature Machine Intelligence 2022). Two standard ways, chosen by a strategy
recipe's ``head``:

* ``masked`` (every learner): one output per class; :class:`TaskMask` sets the scores of the
  classes outside each sample's task to ``NEG``, in training (so the loss, and a training accuracy,
  cover the task's classes only) and at test. van de Ven et al.'s "multi-headed output layer" is
  this: their code masks one shared layer to the active classes. FF learners also draw their
  negative labels from the sample's task only (``FFTemplate``).
* ``multi`` (back-propagation learners): Avalanche's ``MultiHeadClassifier``, one linear head per
  task, added when the task first arrives (:class:`MultiHeadNet`, a ``MultiTaskModule``), its
  outputs masked by :class:`TaskMask` as well. The heads and a masked layer compute the same kind
  of function; they differ in what plugins see: Avalanche's LwF distils every old head on the new
  data, EWC's and SI's importances are computed through each task's own head, and a head's
  parameters exist only from its task on.

With a masked head, ffcl's ``lwf`` plugin (:class:`TaskAwareLwF`) distils each old task's classes
separately, as the multi-head LwF does.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiHeadClassifier, MultiTaskModule
from avalanche.training import JointTraining
from avalanche.training.plugins import LwFPlugin
from avalanche.training.regularization import LearningWithoutForgetting
from torch import nn

from ..config import ConfigError
from ..data.streams import experience_classes
from ..nn.ff import NEG

__all__ = ["TaskMask", "MultiHeadNet", "TaskAwareLwF", "task_mask_of"]

MAX_TASKS = 100_000  # task labels index a table: refuse absurd ones instead of allocating for them


class TaskMask(SupervisedPlugin):
    """The masked single head of task-incremental learning: each sample's outputs outside its task's
    classes are set to ``NEG`` (after every forward pass, training and evaluation alike).

    The classes of each task are learnt from the experiences the strategy trains and evaluates on
    (their task labels and classes), so a benchmark built by Avalanche (``nc_benchmark(...,
    task_labels=True)``, ``task_incremental_benchmark``) works as it is.
    """

    def __init__(self) -> None:
        super().__init__()
        self.masks = torch.zeros(0, 0, dtype=torch.bool)  # [task, class]: the classes of each task seen so far
        self._device_masks: torch.Tensor | None = None

    def register(self, task: int, classes: list[int]) -> None:
        """Add ``classes`` to task ``task``'s classes."""
        if not 0 <= task < MAX_TASKS:
            raise ConfigError(f"task label {task}: task labels must lie in 0..{MAX_TASKS - 1}")
        rows = max(self.masks.shape[0], task + 1)
        cols = max(self.masks.shape[1], max(classes, default=-1) + 1)
        if (rows, cols) != tuple(self.masks.shape):
            grown = torch.zeros(rows, cols, dtype=torch.bool)
            grown[: self.masks.shape[0], : self.masks.shape[1]] = self.masks
            self.masks = grown
            self._device_masks = None
        if classes and not self.masks[task, classes].all():
            self.masks[task, classes] = True
            self._device_masks = None

    def register_experience(self, experience: Any) -> None:
        """Record the task labels and classes of an Avalanche experience."""
        tasks = getattr(experience, "task_labels", None)
        if tasks is not None and len(tasks) == 1:
            self.register(int(tasks[0]), experience_classes(experience))
            return
        self.register_dataset(experience.dataset)  # several tasks, or an online mini-experience: read the samples

    def register_dataset(self, data: Any) -> None:
        """Record the (task label, class) pairs of an Avalanche dataset's samples."""
        labels = torch.as_tensor(list(data.targets_task_labels), dtype=torch.long)
        targets = torch.as_tensor(list(data.targets), dtype=torch.long)
        for t in labels.unique().tolist():
            self.register(t, targets[labels == t].unique().tolist())

    @property
    def min_classes(self) -> int:
        """The fewest classes any task seen so far has (what a fixed number of negatives may not exceed)."""
        counts = self.masks.sum(1)
        counts = counts[counts > 0]
        return int(counts.min()) if len(counts) else 0

    def allowed(self, task_ids: torch.Tensor, width: int) -> torch.Tensor:
        """[B, width] bool: the classes of each sample's task (no host synchronisation once built)."""
        if self._device_masks is None or self._device_masks.device != task_ids.device or self._device_masks.shape[1] != width:
            masks = torch.zeros(self.masks.shape[0], width, dtype=torch.bool)
            cols = min(width, self.masks.shape[1])
            masks[:, :cols] = self.masks[:, :cols]
            self._device_masks = masks.to(task_ids.device)
        return self._device_masks[task_ids]

    def mask(self, output: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``output`` [B, classes] with every class outside the sample's task at ``NEG``."""
        return output.masked_fill(~self.allowed(task_ids, output.shape[1]), NEG)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.register_experience(strategy.experience)

    def after_train_dataset_adaptation(self, strategy: Any, **kwargs: Any) -> None:
        if isinstance(strategy, JointTraining):  # one dataset of every experience; its experience is the first only
            self.register_dataset(strategy.adapted_dataset)

    def before_eval_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.register_experience(strategy.experience)

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        strategy.mb_output = self.mask(strategy.mb_output, strategy.mb_task_id)

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        strategy.mb_output = self.mask(strategy.mb_output, strategy.mb_task_id)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_device_masks": None}


def task_mask_of(strategy: Any) -> TaskMask | None:
    """The strategy's :class:`TaskMask`, if it has one (a task-incremental run with a masked head)."""
    return next((p for p in getattr(strategy, "plugins", ()) if isinstance(p, TaskMask)), None)


class MultiHeadNet(MultiTaskModule):
    """A back-propagation network whose classifier is Avalanche's ``MultiHeadClassifier``: the
    network's ``features`` shared by every task, then one linear head per task (added by
    Avalanche's model adaptation when a task first arrives, as wide as its largest class label;
    :class:`TaskMask` hides the outputs of other tasks' classes)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not hasattr(net, "features") or not hasattr(net, "classifier"):
            raise ConfigError(f"head = \"multi\" needs a network with features and a classifier, not a {type(net).__name__}")
        self.features = net.features
        # Avalanche 0.6's own unit masking fails on experiences whose classes are a set (IndexError);
        # TaskMask masks the outputs instead, as for every task-incremental learner
        self.classifier = MultiHeadClassifier(net.classifier.in_features, initial_out_features=2, masking=False)
        self.feature_size = net.classifier.in_features

    def get_features(self, x: torch.Tensor) -> torch.Tensor:
        """The shared features every head reads (Avalanche's ``BaseModel.get_features``, for LFL)."""
        return self.features(x)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.classifier(self.features(x), task_label)


class _TaskAwareDistillation(LearningWithoutForgetting):
    """Avalanche's LwF loss; on a single-head network (not a ``MultiTaskModule``) it distils every
    old task's classes separately (Avalanche distils task 0's only), from the network's own
    unmasked outputs (a masked head hides the old tasks' classes in ``mb_output``)."""

    def _lwf_penalty(self, out: torch.Tensor, x: torch.Tensor, curr_model: nn.Module) -> Any:
        single_task = len(self.prev_classes_by_task) < 2 and not self.masked
        if self.prev_model is None or isinstance(self.prev_model, MultiTaskModule) or single_task:
            return super()._lwf_penalty(out, x, curr_model)
        with torch.no_grad():
            prev = self.prev_model(x)
        curr = curr_model(x) if self.masked else out
        return sum(self._distillation_loss(curr, prev, classes) for classes in self.prev_classes_by_task.values())


class TaskAwareLwF(LwFPlugin):
    """Avalanche's LwF plugin (Li and Hoiem 2017) with :class:`_TaskAwareDistillation`; the same as
    Avalanche's wherever there are no task labels."""

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0) -> None:
        super().__init__(alpha=alpha, temperature=temperature)
        self.lwf = _TaskAwareDistillation(alpha, temperature)
        self.lwf.masked = False

    def before_training(self, strategy: Any, **kwargs: Any) -> None:
        self.lwf.masked = task_mask_of(strategy) is not None
