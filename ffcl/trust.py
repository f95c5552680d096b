"""Which checkpoints may be unpickled: those ffcl itself wrote on this machine.

A checkpoint (Avalanche's whole-strategy pickle) can run arbitrary code when loaded, so a run
directory received from someone else must never be unpickled silently. Every checkpoint ffcl
writes has its SHA-256 recorded in a local registry (``~/.cache/ffcl/trusted_checkpoints.txt``, or
``$FFCL_TRUST_FILE``); resuming or adapting a run first checks that its checkpoint is one of them.
Anything else is refused with one line, unless the user says they trust it (``--trust-checkpoint``).
Reports read only JSON and CSV and need no trust; ``learner.pt`` (ffcl.learner_file) is read
weights-only and needs none either.

The data location a run directory records (``scenario.data_root``, or a data set path such as
``npz:...``) needs the same trust: a run's ``config.json`` is recorded here when ffcl writes it, and
a received one's data location is refused (ffcl.rundir.check_data_route) unless the user passes
``--trust-checkpoint`` or names a data root of their own.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["registry", "remember", "known", "check", "UntrustedCheckpoint"]


class UntrustedCheckpoint(RuntimeError):
    """A checkpoint that ffcl did not write on this machine."""


def registry() -> Path:
    """The file listing the SHA-256 of every checkpoint ffcl wrote here."""
    return Path(os.environ.get("FFCL_TRUST_FILE") or Path.home() / ".cache" / "ffcl" / "trusted_checkpoints.txt")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def remember(path: Path) -> None:
    """Record a file ffcl has just written (a checkpoint, a run's ``config.json``) as safe to load
    on this machine."""
    reg = registry()
    reg.parent.mkdir(parents=True, exist_ok=True)
    with open(reg, "a") as f:
        f.write(f"{_sha256(path)} {Path(path).resolve()}\n")


def known(path: Path) -> bool:
    """Whether ffcl wrote the file ``path`` (a checkpoint or a run's ``config.json``) on this machine."""
    reg = registry()
    if not reg.is_file() or not Path(path).is_file():
        return False
    return _sha256(Path(path)) in {line.split(" ", 1)[0] for line in reg.read_text().splitlines()}


def check(path: Path, trusted: bool = False) -> None:
    """Raise :class:`UntrustedCheckpoint` unless ffcl wrote ``path`` here (or ``trusted``)."""
    if trusted:
        return
    if not known(path):
        raise UntrustedCheckpoint(
            f"{path} was not written by ffcl on this machine (its SHA-256 is not in {registry()}); loading it would "
            "unpickle code from whoever made it. If you trust its source, pass --trust-checkpoint; else use its learner.pt, "
            "which runs no code (`ffcl adapt --weights-only`, `ffcl.load_learner(DIR, weights_only=True)`)"
        )
