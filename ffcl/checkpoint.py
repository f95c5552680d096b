"""``checkpoint.pt``: Avalanche's whole-strategy checkpoint, written atomically and recorded as
trusted on this machine, read only when trusted (ffcl.trust); and :func:`load_learner`, which
restores a run's strategy from it or, running no code, from ``learner.pt`` (ffcl.learner_file)."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dill
import torch
from avalanche.checkpointing import save_checkpoint

from . import trust
from .files import atomic_path
from .learner_file import LEARNER_FILE, read_learner
from .rundir import RunError

__all__ = ["CHECKPOINT", "write_checkpoint", "reading_checkpoint", "load_learner"]

CHECKPOINT = "checkpoint.pt"


@contextlib.contextmanager
def reading_checkpoint(path: Path, trust_checkpoint: bool) -> Iterator[None]:
    """Unpickle only a checkpoint ffcl wrote here (ffcl.trust); a damaged one is a one-line error."""
    trust.check(path, trust_checkpoint)
    with contextlib.redirect_stdout(io.StringIO()):  # Avalanche prints its device mapping
        try:
            yield
        except Exception as e:  # truncated, corrupted or not a checkpoint at all
            raise RunError(f"{path} cannot be read as an ffcl checkpoint ({type(e).__name__}); it is truncated or not a checkpoint") from None


def load_learner(run_dir: str | Path, device: str | torch.device = "cpu", trust_checkpoint: bool = False,
                 weights_only: bool = False, **build_kwargs: Any) -> Any:
    """The strategy saved in a run or adaptation directory.

    By default from its checkpoint, whole (model, optimiser, plugin state); only a checkpoint ffcl
    wrote on this machine is unpickled, unless ``trust_checkpoint`` (ffcl.trust). With
    ``weights_only`` from ``learner.pt``, which runs no code whoever made it: the recipe rebuilt
    with the saved model state (``build_kwargs`` go to ``build_strategy``; see ffcl.learner_file).
    """
    if weights_only:
        path = Path(run_dir) / LEARNER_FILE
        if not path.is_file():
            raise RunError(f"{run_dir} has no {LEARNER_FILE} (runs made before ffcl wrote it have only {CHECKPOINT})")
        return read_learner(path, device, **build_kwargs)
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunError(f"{run_dir} has no {CHECKPOINT}; was the run started?")
    with reading_checkpoint(path, trust_checkpoint), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, pickle_module=dill, map_location=device, weights_only=False)["strategy"]


def write_checkpoint(strategy: Any, path: str | Path) -> None:
    """Avalanche's whole-strategy checkpoint (``save_checkpoint``), written atomically and recorded
    as trusted on this machine (ffcl.trust); restore it with Avalanche's ``maybe_load_checkpoint``
    or :func:`load_learner`. Use it instead of calling ``save_checkpoint`` directly from a script:

    dill must pickle classes by reference here. With the dill and typing_extensions installed here,
    Avalanche's ``save_checkpoint`` of any strategy with an optimiser (Naive with SGD included)
    fails with "Can't pickle sentinel" otherwise, and ``torch.optim.adam`` names both a module and a
    function, so dill cannot locate ``torch.optim.adam.Adam`` by value either.
    """
    path = Path(path)
    byref = dill.settings["byref"]
    dill.settings["byref"] = True
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", dill.PicklingWarning)
            save_checkpoint(strategy, tmp)
            trust.remember(tmp)  # before it takes its name: a checkpoint on disk is always one ffcl recorded
    finally:
        dill.settings["byref"] = byref
