"""The accuracy-matrix summaries as an Avalanche plugin metric, so any Avalanche logger gets them.

After every evaluation on the whole test stream, :class:`MatrixSummary` reads the per-experience
accuracies Avalanche's own ``accuracy_metrics(experience=True)`` just emitted, adds them as a row
of the accuracy matrix (the evaluation before any training is kept as the untrained reference of
forward transfer) and logs the summaries of ffcl.metrics.matrix that are defined so far, plus
the process's peak memory:

``Summary/plasticity``, ``Summary/forward_transfer``, ``Summary/average_forgetting``,
``Summary/bwt``, ``Summary/final_average_accuracy`` and ``Summary/peak_memory_mb``.

Evaluations on part of the stream (a plugin's periodic evaluation, say) are skipped.
"""

from __future__ import annotations

from typing import Any

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from .matrix import summarize
from .memory import peak_memory_mb

__all__ = ["MatrixSummary", "accuracy_row"]

ACC_EXP = "Top1_Acc_Exp/eval_phase/test_stream/Exp{:03d}"


def accuracy_row(results: dict[str, Any], n_exp: int) -> list[float]:
    """Accuracy on test experiences 0..n_exp-1 from Avalanche's metric results."""
    return [float(results[ACC_EXP.format(j)]) for j in range(n_exp)]


class MatrixSummary(PluginMetric[dict]):
    """Rows of the accuracy matrix from Avalanche's per-experience accuracy, and their summaries.

    :param n_experiences: test experiences in the stream (an evaluation covering fewer is skipped).
    """

    def __init__(self, n_experiences: int) -> None:
        super().__init__()
        self.n_experiences = n_experiences
        self.rows: list[list[float]] = []
        self.initial: list[float] | None = None
        self._trained = 0
        self._evaluated: set[int] = set()

    def reset(self) -> None:
        self.rows, self.initial = [], None

    def result(self) -> dict | None:
        return summarize(self.rows, self.initial) if self.rows else None

    def after_training_exp(self, strategy: Any) -> None:
        if getattr(strategy.experience, "is_last_subexp", True):
            self._trained += 1

    def before_eval(self, strategy: Any) -> None:
        self._evaluated = set()

    def after_eval_exp(self, strategy: Any) -> None:
        self._evaluated.add(int(strategy.experience.current_experience))

    def after_eval(self, strategy: Any) -> list[MetricValue] | None:
        if self._evaluated != set(range(self.n_experiences)):
            return None
        row = accuracy_row(strategy.evaluator.get_last_metrics(), self.n_experiences)
        if self._trained == 0:
            self.initial = row
            return None
        del self.rows[self._trained - 1 :]  # evaluated twice after one experience: keep the last
        self.rows.append(row)
        step = strategy.clock.train_iterations
        values = {**summarize(self.rows, self.initial), "peak_memory_mb": peak_memory_mb(strategy.device)}
        return [MetricValue(self, f"Summary/{k}", v, step) for k, v in values.items() if v is not None]

    def __str__(self) -> str:
        return "MatrixSummary"
