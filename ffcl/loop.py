"""The training loop that ``ffcl run``, ``ffcl run --resume``, ``ffcl adapt`` and ``ffcl compare``'s
workers all use: train a step's experiences, evaluate on the test stream, record the row of the
accuracy matrix (counted once, by :class:`~ffcl.metrics.MatrixSummary`), then write the checkpoint
and ``learner.pt`` so an interruption loses at most the step in progress."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from tqdm.auto import tqdm

from . import checkpoint
from .config import RunConfig
from .learner_file import LEARNER_FILE, save_learner
from .metrics.summary import matrix_summary
from .rundir import RunError

__all__ = ["Step", "train_loop", "evaluate_row", "FiniteGuard", "resolve_device", "torch_settings"]


class FiniteGuard(SupervisedPlugin):
    """Stop training when a weight becomes NaN or infinite (checked once per epoch, so no
    per-step host synchronisation), naming the parameter and the experience. The run's last
    checkpoint, written after the previous experience, stays as it was."""

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        for name, p in strategy.model.named_parameters():
            if not torch.isfinite(p).all():
                raise RunError(
                    f"experience {strategy.clock.train_exp_counter}, epoch {strategy.clock.train_exp_epochs}: "
                    f"parameter {name} became NaN or infinite; lower the learning rate (strategy.lr) and resume "
                    "from the last checkpoint or start again"
                )


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


@contextlib.contextmanager
def torch_settings(cfg: RunConfig) -> Iterator[None]:
    """The run's thread count and deterministic algorithms, for the run only (then as they were)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what deterministic cuBLAS needs
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def evaluate_row(strategy: Any, test_stream: Any, n_experiences: int) -> list[float]:
    """Evaluate ``strategy`` on ``test_stream`` (its first ``n_experiences`` experiences, or all) and
    return the accuracy on each, as its evaluator's :class:`~ffcl.metrics.MatrixSummary` counted them."""
    summary = matrix_summary(strategy, len(test_stream))
    strategy.eval(test_stream)
    row = summary.last[:n_experiences]
    if len(row) != n_experiences or any(a is None for a in row):
        raise RunError(f"the evaluation covered {sum(a is not None for a in row)} of {n_experiences} test experiences")
    return row  # type: ignore[return-value]


@dataclass
class Step:
    """One finished training step: its index, its row of the accuracy matrix and its times."""

    index: int
    row: list[float | None]  # None: a test experience not evaluated (ScenarioConfig.evaluate = "seen")
    train_time_s: float
    eval_time_s: float


def train_loop(strategy: Any, steps: Iterable[Sequence[Any]], test_stream: Any, out: Path, *, done: int,
               record: Callable[[Step], str], class_names: Sequence[str] | None, quiet: bool,
               total: int | None = None, say: Callable[[str], None] = print, seen_only: bool = False) -> None:
    """Train ``strategy`` step after step, skipping the first ``done`` steps (finished before an
    interruption). A step is a list of experiences (online mini-experiences of one experience, or
    one); after it the strategy is evaluated on ``test_stream`` (``seen_only``: on its experiences
    up to the step's, the row's later entries ``None``) and ``record`` stores the
    :class:`Step` on the strategy (so that the checkpoint holds it) and returns the line to print;
    then ``checkpoint.pt`` and ``learner.pt`` are written in ``out``."""
    for i, group in enumerate(steps):
        if i < done:
            continue
        bar = tqdm(group, desc=f"exp {i + 1}/{total or '?'}", leave=False, disable=quiet or len(group) == 1)
        t0 = time.perf_counter()
        for exp in bar:
            strategy.train(exp)
        t1 = time.perf_counter()
        n = i + 1 if seen_only else len(test_stream)
        row: list[float | None] = [*evaluate_row(strategy, test_stream[:n], n), *[None] * (len(test_stream) - n)]
        line = record(Step(i, row, t1 - t0, time.perf_counter() - t1))
        checkpoint.write_checkpoint(strategy, out / checkpoint.CHECKPOINT)
        save_learner(strategy, out / LEARNER_FILE, class_names)
        say(line)
