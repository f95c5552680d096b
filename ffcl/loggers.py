"""The loggers researchers watch, written into the run directory: Avalanche's ``TensorboardLogger``
(``RUN/tensorboard/``), ``WandBLogger`` (``RUN/wandb/``, offline unless ``WANDB_MODE`` says
otherwise) and ``CSVLogger`` (``RUN/csv/``).

A run names them with ``--logger NAME`` (repeatable) or a strategy recipe's ``loggers = [...]``;
they receive every metric the run's ``EvaluationPlugin`` emits (docs/metrics.md). In a
checkpoint a logger is stored as nothing (:class:`Detached`): unpickling a checkpoint never
opens, truncates or writes a logger's files, and a resumed run attaches fresh loggers.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avalanche.logging import BaseLogger

from .config import LOGGERS, ConfigError

__all__ = ["LOGGERS", "Detached", "check_installed", "close_loggers", "make_loggers"]

_PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb"}  # logger -> the package it needs (and ffcl's extra of that name)


def check_installed(names: Sequence[str]) -> None:
    """A one-line :class:`ConfigError` for a logger whose package is missing, naming the extra that installs it."""
    for name in names:
        package = _PACKAGE.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"the {name} logger needs the {package} package: pip install 'ffcl[{package}]'")


class Detached(BaseLogger):
    """A logger as a checkpoint stores it: it logs nothing and holds no file."""

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        pass


class _Pickled:
    """Mix-in: pickled (e.g. in a checkpoint), the logger becomes a :class:`Detached`."""

    def __reduce_ex__(self, protocol: Any) -> tuple:
        return (Detached, ())


def make_loggers(names: Sequence[str], run_dir: str | Path, *, name: str = "", config: dict[str, Any] | None = None) -> list[BaseLogger]:
    """Avalanche loggers for ``names`` writing under ``run_dir`` (``name`` and ``config`` label the
    W&B run). A resumed run's CSV files are continued, not overwritten."""
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise ConfigError(f"unknown logger '{unknown[0]}'; choose from: {', '.join(LOGGERS)}")
    check_installed(names)
    run_dir = Path(run_dir)
    loggers: list[BaseLogger] = []
    made = [run_dir / sub for sub in names if not (run_dir / sub).exists()]  # each writes into RUN/<its name>/
    try:
        for logger in names:
            loggers.append(_make(logger, run_dir, name or run_dir.name, config))
    except BaseException as exc:  # leave nothing half-made behind
        close_loggers(loggers)
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, Exception) and not isinstance(exc, ConfigError):
            raise ConfigError(f"the {logger} logger could not start ({type(exc).__name__}: {exc})".split("\n")[0]) from None
        raise
    return loggers


def _make(logger: str, run_dir: Path, name: str, config: dict[str, Any] | None) -> BaseLogger:
    if logger == "tensorboard":
        from avalanche.logging import TensorboardLogger

        return type("TensorboardLogger", (_Pickled, TensorboardLogger), {})(run_dir / "tensorboard")
    if logger == "csv":
        return _csv_logger(run_dir / "csv")
    from avalanche.logging import WandBLogger

    # offline unless WANDB_MODE says otherwise: no login prompt, no network; our own run id, since
    # Avalanche 0.6 calls wandb.util.generate_id, which recent wandb releases no longer have
    params = {"mode": os.environ.get("WANDB_MODE", "offline"), "id": os.environ.get("WANDB_RUN_ID") or uuid.uuid4().hex[:12]}
    class _WandB(_Pickled, WandBLogger):
        def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
            """Numbers only: Avalanche 0.6's own method checks ``wandb.viz``, gone from recent wandb."""
            if isinstance(value, (float, int)) and not isinstance(value, bool):
                self.step = x_plot
                self.wandb.log({name: value}, step=x_plot)

    return _WandB(
        project_name=os.environ.get("WANDB_PROJECT", "ffcl"), run_name=name, save_code=False, config=config,
        dir=str(run_dir), params=params)


def _csv_logger(folder: Path) -> BaseLogger:
    """Avalanche's CSVLogger in ``folder``; rows an earlier, interrupted start wrote there are kept
    (Avalanche's logger opens its files for writing, with a header)."""
    from avalanche.logging import CSVLogger

    files = ("training_results.csv", "eval_results.csv")
    earlier = {f: (folder / f).read_text().partition("\n")[2] for f in files if (folder / f).is_file()}
    logger = type("CSVLogger", (_Pickled, CSVLogger), {})(str(folder))
    for f, handle in zip(files, (logger.training_file, logger.eval_file)):
        if earlier.get(f):
            handle.write(earlier[f])
            handle.flush()
    return logger


def close_loggers(loggers: Sequence[BaseLogger]) -> None:
    """Flush and close what ``make_loggers`` opened: event files, CSV files, the W&B run."""
    for logger in loggers:
        if hasattr(logger, "writer"):  # TensorBoard
            logger.writer.close()
        elif hasattr(logger, "eval_file"):  # CSV
            logger.close()
        elif getattr(logger, "wandb", None) is not None and logger.wandb.run is not None:
            logger.wandb.finish()
