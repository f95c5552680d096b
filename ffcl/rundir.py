"""The run directory: its config, its lock, its files, and what a failed start leaves behind.

A run directory holds ``config.json`` (the resolved recipe), ``metrics.json``, ``metrics.csv``,
``log.txt``, ``checkpoint.pt`` and ``learner.pt`` (see ffcl.experiment). An existing run
directory is never overwritten, and a run that fails before training removes only what it wrote.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
from pathlib import Path
from typing import Any

from . import trust
from .config import ConfigError, RunConfig, ScenarioConfig, StrategyConfig, from_dict, to_dict
from .files import LOCK_FD_ENV, LOCK_FILE, atomic_path, inherited_lock, lock_run_dir, refuse_link

__all__ = ["RunError", "load_run_config", "check_out_dir", "prepare_dir", "lock", "remove_own", "write_json", "write_csv",
           "check_data_route"]


class RunError(RuntimeError):
    """The run cannot start as asked (e.g. its directory exists); the message says what to do."""


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def write_config(path: Path, data: Any) -> None:
    """A run's or adaptation's ``config.json``, recorded as written by ffcl on this machine
    (ffcl.trust), so the data location it names is followed when the run is resumed here."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
        trust.remember(tmp)


def write_csv(path: Path, rows: list[list[float | None]], train_times: list[float]) -> None:
    """metrics.csv from the accuracy matrix so far (its evaluated entries), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trained_experience", "test_experience", "accuracy", "train_time_s"])
        for step, (row, train_time) in enumerate(zip(rows, train_times)):
            for j, acc in enumerate(row):
                if acc is not None:
                    w.writerow([step, j, f"{acc:.6f}", f"{train_time:.3f}"])


def load_run_config(run_dir: Path) -> RunConfig:
    """The resolved config a run directory was made with."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no config.json)")
    data: Any = None
    try:
        data = json.loads(path.read_text())
        data["scenario"] = from_dict(ScenarioConfig, data["scenario"], f"{path}: scenario")
        data["strategy"] = from_dict(StrategyConfig, data["strategy"], f"{path}: strategy")
        return RunConfig(**data)
    except (ValueError, KeyError, TypeError) as e:  # JSON errors are ValueErrors; ConfigError passes through as one
        if isinstance(e, ConfigError):
            raise
        kind = "an adaptation directory (continue it with `ffcl adapt DIR --resume`)" if isinstance(data, dict) and "adapt" in data else "not valid"
        raise RunError(f"{path} is {kind} ({type(e).__name__}: {e})") from None


def check_data_route(run_dir: Path, dataset: str, data_root: str | None, trusted: bool, how: str,
                     feature_extractor: str = "") -> None:
    """Refuse to read data from a location that a received run directory records (a ``data_root``,
    or a dataset path ``npz:``/``folder:``), unless ffcl wrote its ``config.json`` on this machine
    (ffcl.trust) or the user trusts it (``trusted``). ``how``: the user's other way out."""
    recorded = [f"data_root {data_root!r}"] if data_root is not None else []
    recorded += [f"dataset {dataset!r}"] if dataset.startswith(("npz:", "folder:")) else []
    recorded += [f"TorchScript feature_extractor {feature_extractor!r}"] if feature_extractor else []
    if not recorded or trusted or trust.known(Path(run_dir) / "config.json"):
        return
    raise RunError(f"{run_dir} records its data at {' and '.join(recorded)}, and its config.json was not written by ffcl on this "
                   f"machine: pass --trust-checkpoint if you trust its source, or {how}")


def check_out_dir(out: Path) -> None:
    """A one-line error if ``out``, or a folder above it, is an existing file."""
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise RunError(f"--out {out}: {blocking} is a file, not a folder; choose another --out")


def prepare_dir(cfg: RunConfig | None, run_dir: Path, resume: bool) -> tuple[RunConfig, int, bool]:
    """The run's config, the descriptor of its directory's lock (ffcl.files) and whether this call
    made the directory. A directory that is a link, or that another live process holds, is refused."""
    refuse_link(run_dir)
    if resume:
        if not (run_dir / "config.json").is_file():
            load_run_config(run_dir)  # its one-line error
        fd = lock(run_dir)
        try:
            cfg = load_run_config(run_dir)
            if (run_dir / "metrics.json").exists():
                raise RunError(f"{run_dir} has already finished (metrics.json exists); nothing to resume")
        except BaseException:
            os.close(fd)
            raise
        return cfg, fd, False
    if cfg is None:
        raise RunError("a new run needs a RunConfig")
    check_out_dir(run_dir)
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise RunError(
            f"run directory {run_dir} already exists; choose another --out, or resume it with `ffcl run --resume {run_dir}`"
        )
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = lock(run_dir)
    except OSError as e:
        raise RunError(f"cannot write the run directory {run_dir} ({e.strerror}); choose another --out") from None
    try:
        write_config(run_dir / "config.json", to_dict(cfg))
    except BaseException:
        remove_own(run_dir, created, fd)
        raise
    return cfg, fd, created


def lock(run_dir: Path) -> int:
    """Hold ``run_dir``'s lock: the one ``ffcl compare`` handed down, or a fresh one; a one-line
    error if another process holds it (a live run)."""
    fd = inherited_lock(run_dir)
    if fd is None:
        fd = lock_run_dir(run_dir)
    if fd is None:
        raise RunError(f"{run_dir} is being run by another ffcl process (it holds {run_dir / LOCK_FILE}); "
                       "wait for it to finish, or stop it")
    return fd


def remove_own(run_dir: Path, created: bool, fd: int) -> None:
    """Undo a new run that failed before training: remove the directory if this run made it (all
    in it is this run's), else only the files this run wrote (never through a link); release the lock."""
    if created and not run_dir.is_symlink():
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(fd)
        return
    for name in ("config.json", "log.txt"):
        path = run_dir / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    if os.environ.get(LOCK_FD_ENV) != str(fd):  # a lock handed down stays: its launcher holds it too
        with contextlib.suppress(OSError):
            (run_dir / LOCK_FILE).unlink()
    os.close(fd)
