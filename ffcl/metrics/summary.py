"""The accuracy-matrix summaries as an Avalanche plugin metric, so any Avalanche logger gets them.

After every evaluation of the experiences trained so far, :class:`MatrixSummary` adds the
per-experience accuracies it counted as a row of the accuracy matrix (the evaluation before any training is kept as the untrained reference of
forward transfer) and logs the summaries of ffcl.metrics.matrix that are defined so far, plus
the process's peak memory:

``Summary/plasticity``, ``Summary/forward_transfer``, ``Summary/average_forgetting``,
``Summary/bwt``, ``Summary/final_average_accuracy`` and ``Summary/peak_memory_mb``.

Evaluations that miss an experience trained so far are skipped. :attr:`MatrixSummary.last` holds
the accuracies of the last evaluation whatever it covered: the one place where ffcl's runs and
adaptations (ffcl.loop) read an accuracy-matrix row from.
"""

from __future__ import annotations

import re
from typing import Any

from avalanche.evaluation import PluginMetric
from avalanche.evaluation.metric_results import MetricValue

from .matrix import summarize
from .memory import peak_memory_mb

__all__ = ["MatrixSummary", "accuracy_row", "matrix_summary"]

ACC_EXP = re.compile(r"Top1_Acc_Exp/eval_phase/test_stream/(?:Task\d+/)?Exp(\d+)$")


def accuracy_row(results: dict[str, Any], n_exp: int) -> list[float]:
    """Accuracy on test experiences 0..n_exp-1 from Avalanche's metric results (whose names carry
    ``/TaskXXX/`` when the stream has task labels)."""
    found = {int(m.group(1)): float(v) for k, v in results.items() if (m := ACC_EXP.match(k))}
    return [found[j] for j in range(n_exp)]


class MatrixSummary(PluginMetric[dict]):
    """Rows of the accuracy matrix, measured from the model's outputs, and their summaries.

    Per-experience accuracy is counted here from ``mb_output`` and ``mb_y`` (so it works with any
    evaluator, whatever Avalanche names its metrics, e.g. with ``/Task000/``). A training step is an
    *origin* experience: online mini-experiences of one experience count once, whether or not
    Avalanche marks the last of them. An evaluation makes a row when it covers every experience
    trained so far, so both ``eval(test_stream)`` and ``eval(test_stream[:i + 1])`` work; entries
    of experiences not evaluated stay ``None``.

    :param n_experiences: test experiences in the stream.
    """

    def __init__(self, n_experiences: int) -> None:
        super().__init__()
        self.n_experiences = n_experiences
        self.rows: list[list[float | None]] = []
        self.initial: list[float] | None = None
        self._steps: list[Any] = []  # the origin experiences trained so far, in order
        self._counts: dict[int, list[int]] = {}  # this evaluation: experience -> [correct, total]
        self.last: list[float | None] = []  # the last evaluation's accuracy per test experience (None: not evaluated)

    def reset(self) -> None:
        self.rows, self.initial = [], None

    def result(self) -> dict | None:
        return summarize(self.rows, self.initial) if self.rows else None

    def after_training_exp(self, strategy: Any) -> None:
        exp = strategy.experience
        origin = getattr(exp, "origin_experience", None) or exp
        key = getattr(origin, "current_experience", None)
        if key is None or key not in self._steps:
            self._steps.append(key if key is not None else len(self._steps))

    def before_eval(self, strategy: Any) -> None:
        self._counts = {}

    def after_eval_iteration(self, strategy: Any) -> None:
        c = self._counts.setdefault(int(strategy.experience.current_experience), [0, 0])
        c[0] += int((strategy.mb_output.argmax(1) == strategy.mb_y).sum())
        c[1] += len(strategy.mb_y)

    def after_eval(self, strategy: Any) -> list[MetricValue] | None:
        acc = {j: correct / total for j, (correct, total) in self._counts.items() if total}
        row = [acc.get(j) for j in range(self.n_experiences)]
        self.last = row
        trained = len(self._steps)
        if trained == 0:
            if None not in row:
                self.initial = row
            return None
        if any(row[j] is None for j in range(min(trained, self.n_experiences))):
            return None  # part of the seen experiences only (a plugin's periodic check, say)
        del self.rows[trained - 1 :]  # evaluated twice after one experience: keep the last
        self.rows.append(row)
        step = strategy.clock.train_iterations
        values = {**summarize(self.rows, self.initial), "peak_memory_mb": peak_memory_mb(strategy.device)}
        return [MetricValue(self, f"Summary/{k}", v, step) for k, v in values.items() if v is not None]

    def __str__(self) -> str:
        return "MatrixSummary"


def matrix_summary(strategy: Any, n_experiences: int) -> MatrixSummary:
    """The :class:`MatrixSummary` of ``strategy``'s evaluator, for a test stream of ``n_experiences``:
    the one it has if it counts that many experiences or more, else a new one in its place (or added)."""
    metrics = strategy.evaluator.metrics
    found = [i for i, m in enumerate(metrics) if isinstance(m, MatrixSummary)]
    if found and metrics[found[0]].n_experiences >= n_experiences:
        return metrics[found[0]]
    summary = MatrixSummary(n_experiences)
    if found:
        metrics[found[0]] = summary
    else:
        metrics.append(summary)
    return summary
