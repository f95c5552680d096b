"""Anytime evaluation: accuracy on everything seen so far, at regular intervals during training.

A stream learner must be usable at any moment, not only at experience boundaries (Koh et al.
2022, "Online Continual Learning on Class Incremental Blurry Task Configuration with Anytime
Inference", ICLR; Caccia et al. 2022). Every ``every`` training samples this Avalanche plugin
metric measures the accuracy on the test data of the experiences seen so far (a fixed random
subset of each) and logs it through Avalanche's loggers as ``Anytime_Acc/train_phase/seen_so_far``.
The whole curve is kept in :attr:`AnytimeAccuracy.curve` (written to metrics.json by the runner).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

__all__ = ["AnytimeAccuracy", "seen_test_data", "eval_mode", "stream_samples"]

NAME = "Anytime_Acc/train_phase/seen_so_far"


def seen_test_data(tests: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images and labels of the first ``n`` experiences, pooled."""
    return torch.cat([t[0] for t in tests[:n]]), torch.cat([t[1] for t in tests[:n]])


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate in the middle of training: eval mode and no gradients, then back as it was."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def stream_samples(strategy: Any) -> int:
    """How many of the current training minibatch's samples are the stream's own: replay appends
    its samples after them, so at most the training loader's batch size (which statistics learners
    set far above the recipe's ``batch_size``)."""
    batch = getattr(getattr(strategy, "dataloader", None), "batch_size", None) or strategy.train_mb_size
    return min(len(strategy.mb_y), batch)


class AnytimeAccuracy(PluginMetric[float]):
    """Accuracy on the test data of the experiences seen so far, every ``every`` training samples.

    :param tests: per test experience, ``(x, y)`` tensors (a subset is fine: the cost of each
        evaluation grows with their size).
    :param every: training samples between two evaluations; one more at the end of each experience.
    :param batch_size: evaluation minibatch size.

    The test data is part of the metric's state, so a strategy restored from a checkpoint
    (ffcl's or Avalanche's ``save_checkpoint``) keeps recording.

    ``curve`` holds one dict per evaluation: ``samples`` (training samples seen), ``experience``
    (the experience being learnt, 0-based) and ``accuracy``.
    """

    def __init__(self, tests: list[tuple[torch.Tensor, torch.Tensor]], every: int, batch_size: int = 1024) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.tests, self.every, self.batch_size = tests, every, batch_size
        self.curve: list[dict[str, float]] = []
        self._seen = 0  # training samples of finished experiences
        self._in_exp = 0  # training samples of the current experience
        self._next = every
        self._exp = 0

    def reset(self) -> None:
        self.curve = []

    def result(self) -> float | None:
        return self.curve[-1]["accuracy"] if self.curve else None

    @staticmethod
    def _experience_index(strategy: Any) -> int:
        exp = strategy.experience
        origin = getattr(exp, "origin_experience", None)  # online mini-experiences
        return int((origin or exp).current_experience)

    def before_training_exp(self, strategy: Any) -> None:
        self._exp = self._experience_index(strategy)
        self._in_exp = 0

    def after_training_iteration(self, strategy: Any) -> list[MetricValue] | None:
        if not self.tests:  # a learner restored without its test data (e.g. by `ffcl adapt`)
            return None
        # minibatches may carry replayed samples after the stream's own: count only the stream's
        limit = len(strategy.experience.dataset) * strategy.train_epochs
        self._in_exp = min(limit, self._in_exp + stream_samples(strategy))
        if self._seen + self._in_exp < self._next:
            return None
        while self._next <= self._seen + self._in_exp:
            self._next += self.every
        return self._evaluate(strategy)

    def after_training_exp(self, strategy: Any) -> list[MetricValue] | None:
        self._seen += self._in_exp
        self._in_exp = 0
        if not self.tests or self.curve and self.curve[-1]["samples"] == self._seen:
            return None
        return self._evaluate(strategy)

    def accuracy(self, model: torch.nn.Module, n_experiences: int, device: torch.device) -> float:
        """Accuracy of ``model`` on the first ``n_experiences`` test sets, pooled."""
        x, y = seen_test_data(self.tests, n_experiences)
        with eval_mode(model):
            correct = sum(
                int((model(x[i : i + self.batch_size].to(device)).argmax(1).cpu() == y[i : i + self.batch_size]).sum())
                for i in range(0, len(x), self.batch_size)
            )
        return correct / len(x)

    def _evaluate(self, strategy: Any) -> list[MetricValue]:
        acc = self.accuracy(strategy.model, self._exp + 1, strategy.device)
        samples = self._seen + self._in_exp
        self.curve.append({"samples": samples, "experience": self._exp, "accuracy": acc})
        return [MetricValue(self, NAME, acc, samples)]

    def __str__(self) -> str:
        return "Anytime_Acc"
