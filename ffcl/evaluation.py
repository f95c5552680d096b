"""A run's evaluator: which metrics it computes and logs, the test samples its own metrics keep, and
the fields of ``metrics.json`` that its metrics and plugins add (see docs/metrics.md)."""

from __future__ import annotations

from typing import Any, TextIO

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics, timing_metrics
from avalanche.logging import TextLogger
from avalanche.training.plugins import EvaluationPlugin

from .config import ScenarioConfig
from .data import Stream
from .data.loaders import dataset_tensors
from .metrics import AnytimeAccuracy, BlockActivity, MatrixSummary, PrequentialAccuracy
from .protocols import KeepsBytes, RunSummary

__all__ = ["run_evaluator", "sample_test_data", "restore_test_data", "run_summaries"]


def sample_test_data(stream: Stream, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per test experience, a fixed random subset of at most ``size`` test samples (x, y)."""
    g = torch.Generator().manual_seed(seed)
    tests = []
    for exp in stream.test_stream:
        x, y, _ = dataset_tensors(exp.dataset)
        keep = torch.randperm(len(y), generator=g)[:size]
        tests.append((x[keep], y[keep]))
    return tests


def _test_data_metrics(stream: Stream, sc: ScenarioConfig, seed: int) -> list[Any]:
    """ffcl's metrics that hold test samples (rebuilt on resume: they are not checkpointed)."""
    ours: list[Any] = [BlockActivity(sample_test_data(stream, 100, seed))]
    if sc.anytime_every:
        ours.append(AnytimeAccuracy(sample_test_data(stream, sc.anytime_test_size, seed), sc.anytime_every))
    return ours


def run_evaluator(stream: Stream, sc: ScenarioConfig, seed: int, log_file: TextIO) -> EvaluationPlugin:
    """The evaluator of a run: Avalanche's accuracy, loss and timing (logged), the accuracy matrix
    (:class:`MatrixSummary`, the one source of ``metrics.json``'s matrix, forgetting and BWT),
    prequential accuracy on online streams, anytime accuracy and block activity; logged to ``log_file``."""
    return EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        loss_metrics(stream=True),
        timing_metrics(experience=True),
        MatrixSummary(stream.n_experiences),
        *([PrequentialAccuracy(sc.prequential_window, sc.anytime_every or 1000)] if sc.online else []),
        *_test_data_metrics(stream, sc, seed),
        loggers=[TextLogger(log_file)],
    )


def restore_test_data(strategy: Any, stream: Stream, sc: ScenarioConfig, seed: int) -> None:
    """Give a restored strategy's metrics back the test samples a checkpoint does not hold."""
    fresh = {type(m): m for m in _test_data_metrics(stream, sc, seed)}
    for metric in strategy.evaluator.metrics:
        if type(metric) in fresh:
            metric.tests = fresh[type(metric)].tests


def _metric_fields(metric: Any) -> dict[str, Any]:
    """The ``metrics.json`` fields of ffcl's own plugin metrics (docs/metrics.md)."""
    if isinstance(metric, AnytimeAccuracy):
        return {"anytime": list(metric.curve)}
    if isinstance(metric, BlockActivity) and metric.history:
        return {"activity": list(metric.history)}
    if isinstance(metric, PrequentialAccuracy):
        return {"prequential": {"samples": metric.samples, "window": metric.window, "cumulative": metric.result(),
                                "last_window": metric.window_accuracy(), "curve": list(metric.curve)}}
    return {}


def run_summaries(strategy: Any) -> dict[str, Any]:
    """What the plugins (:class:`~ffcl.protocols.RunSummary`) and the evaluator's metrics add to
    ``metrics.json`` after an experience."""
    fields: dict[str, Any] = {}
    for plugin in strategy.plugins:
        if isinstance(plugin, RunSummary):
            fields |= plugin.run_summary()
    for metric in strategy.evaluator.metrics:
        fields |= _metric_fields(metric)
    return fields


def model_summary(model: Any) -> dict[str, Any]:
    """What the model adds to ``metrics.json`` (:class:`~ffcl.protocols.KeepsBytes`)."""
    return {"kept_bytes": model.kept_bytes()} if isinstance(model, KeepsBytes) else {}
