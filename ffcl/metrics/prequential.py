"""Prequential ("test-then-train") accuracy: every arriving sample is predicted before it is learnt.

The evaluation of data-stream learning (Dawid 1984; Gama et al. 2013, "On evaluating stream
learning algorithms", Machine Learning; river's ``progressive_val_score``, MOA's prequential
evaluation): no held-out test set, each incoming minibatch is first scored by the current model,
then trained on. This Avalanche plugin metric reads the minibatch's class scores after the
forward pass and before the update (``mb_output``: logits for back-propagation learners, the
class scores over the seen classes for FF and statistics learners), on the first epoch of an
experience only, and only for the stream's own samples (replayed samples follow them in the
minibatch and are never counted). The minibatch is the unit of test-then-train: learners that take
statistics in larger blocks (``slda``, ``ncm``, ``dc_lda``: 4096 samples, one covariance solve
each) predict each block with the statistics from before it.

It keeps the cumulative accuracy (all samples so far) and the windowed accuracy (the last
``window`` samples), logs both through Avalanche's loggers every ``every`` samples (an
experience may be a single arriving batch, so experience ends add no points), as ``Prequential_Acc/train_phase/cumulative`` and
``Prequential_Acc/train_phase/window``, and keeps the whole curve in :attr:`curve`.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from .anytime import stream_samples

__all__ = ["PrequentialAccuracy", "CUMULATIVE", "WINDOW"]

CUMULATIVE = "Prequential_Acc/train_phase/cumulative"
WINDOW = "Prequential_Acc/train_phase/window"


class PrequentialAccuracy(PluginMetric[float]):
    """Test-then-train accuracy of the training stream.

    :param window: samples in the windowed accuracy.
    :param every: samples between two points of :attr:`curve` (and two logged values).

    ``curve`` holds one dict per point: ``samples`` (stream samples scored so far), ``experience``
    (0-based, the origin experience for online mini-experiences), ``cumulative`` and ``window``.
    """

    def __init__(self, window: int = 1000, every: int = 1000) -> None:
        super().__init__()
        if window < 1 or every < 1:
            raise ValueError(f"window and every must be >= 1, got {window} and {every}")
        self.window, self.every = window, every
        self.curve: list[dict[str, float]] = []
        self._correct = 0  # stream samples predicted right, all so far (with what is still pending)
        self.samples = 0
        self._recent: deque[bool] = deque(maxlen=window)
        self._pending: list[torch.Tensor] = []  # hits still on the device: read in one go, not per minibatch
        self._in_exp = 0  # stream samples of the current experience scored so far
        self._next = every
        self._exp = 0

    def reset(self) -> None:
        self.curve = []

    @property
    def correct(self) -> int:
        """Stream samples predicted right so far."""
        self._sync()
        return self._correct

    @correct.setter
    def correct(self, value: int) -> None:
        self._sync()
        self._correct = value

    def result(self) -> float | None:
        return self.correct / self.samples if self.samples else None

    def window_accuracy(self) -> float | None:
        self._sync()
        return sum(self._recent) / len(self._recent) if self._recent else None

    def _sync(self) -> None:
        """Bring the minibatches' hits from the device (one transfer for many minibatches)."""
        if self._pending:
            hits = torch.cat(self._pending).tolist()
            self._pending = []
            self._correct += sum(hits)
            self._recent.extend(hits)

    def before_training_exp(self, strategy: Any) -> None:
        exp = strategy.experience
        self._exp = int((getattr(exp, "origin_experience", None) or exp).current_experience)
        self._in_exp = 0

    def after_forward(self, strategy: Any) -> None:
        if not strategy.is_training or strategy.clock.train_exp_epochs > 0:  # later epochs have seen the data
            return
        own = min(stream_samples(strategy), len(strategy.experience.dataset) - self._in_exp)
        if own <= 0:
            return
        self._pending.append((strategy.mb_output[:own].argmax(1) == strategy.mb_y[:own]).detach())
        self._in_exp += own
        self.samples += own

    def after_training_iteration(self, strategy: Any) -> list[MetricValue] | None:
        if self.samples < self._next:
            return None
        while self._next <= self.samples:
            self._next += self.every
        return self._record()

    def _record(self) -> list[MetricValue]:
        point = {"samples": self.samples, "experience": self._exp, "cumulative": self.result(), "window": self.window_accuracy()}
        self.curve.append(point)
        return [MetricValue(self, CUMULATIVE, point["cumulative"], self.samples),
                MetricValue(self, WINDOW, point["window"], self.samples)]

    def __getstate__(self) -> dict[str, Any]:
        self._sync()  # a checkpoint holds plain counts
        return self.__dict__.copy()

    def __str__(self) -> str:
        return "Prequential_Acc"
