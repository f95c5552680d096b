"""``ffcl compare``: a grid of runs (strategies x settings x seeds) on one scenario, side by side.

Each run is an ordinary run directory made by ``ffcl run`` in its own process (so its peak memory
is its own), ``workers`` processes at a time, each pinned to its share of the CPU cores with as
many intra-op threads (so parallel runs do not fight over threads). ``--grid key=v1,v2`` adds
settings to sweep; each combination is a row of its own. A grid directory is resumable: finished
runs are reused, interrupted ones resumed (only when the recipe they recorded is the one asked for:
otherwise the grid stops with one line before anything runs); a run that fails is listed under the table with the
last line it printed, and the others still run. The summary (mean ± std over seeds) is printed
and written as ``comparison.md`` and ``comparison.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, RunConfig, StrategyConfig, apply_overrides, from_dict, load_scenario, load_strategy, to_dict
from .experiment import RunError, load_run_config, usable_cpus
from .files import LAUNCHER_LOCKED, LOCK_FD_ENV, LOCK_FILE, atomic_path, lock_run_dir, refuse_link
from .report import load_metrics

__all__ = ["Cell", "EXECUTORS", "grid_cells", "cell_config", "run_grid", "run_cell", "summarize_runs", "format_markdown", "format_failures", "write_comparison", "COLUMNS"]

# (metrics.json key, column title, scale)
COLUMNS = [
    ("final_average_accuracy", "final avg acc (%)", 100.0),
    ("average_forgetting", "avg forgetting (%)", 100.0),
    ("bwt", "BWT (%)", 100.0),
    ("plasticity", "plasticity (%)", 100.0),
    ("train_time_s", "train time (s)", 1.0),
    ("peak_memory_mb", "peak memory (MiB)", 1.0),
]


@dataclass(frozen=True)
class Cell:
    """One run of a grid: a strategy recipe, a seed and the grid's settings for it."""

    strategy: str
    seed: int
    settings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The row of the comparison this run belongs to: the recipe and its settings."""
        return Path(self.strategy).stem + (f" [{', '.join(self.settings)}]" if self.settings else "")

    @property
    def dirname(self) -> str:
        short = (key.rsplit(".", 1)[-1] + "=" + value for key, _, value in (s.partition("=") for s in self.settings))
        tag = "_".join(re.sub(r"[^A-Za-z0-9.=+-]", "_", s) for s in short)
        return f"{Path(self.strategy).stem}{'-' + tag if tag else ''}-seed{self.seed}"


def grid_cells(strategies: Sequence[str], seeds: Sequence[int], grid: Sequence[str] = ()) -> list[Cell]:
    """Every (strategy, setting combination, seed); ``grid`` entries read ``key=v1,v2,...``
    (``--grid strategy.lr=1e-3,3e-3``), and their combinations are the product of all entries."""
    axes = []
    for entry in grid:
        key, sep, values = entry.partition("=")
        options = [v.strip() for v in values.split(",") if v.strip()] if sep else []
        if not key.strip() or not options:
            raise ConfigError(f"--grid '{entry}': write section.key=value1,value2,..., e.g. strategy.lr=1e-3,3e-3")
        if len(set(options)) != len(options):
            raise ConfigError(f"--grid '{entry}': a value is repeated; list each value once")
        axes.append([f"{key.strip()}={v}" for v in options])
    return [Cell(s, seed, combo) for s in strategies for combo in itertools.product(*axes) for seed in seeds]


def cell_config(scenario: str, cell: Cell, overrides: Sequence[str] = (), device: str = "auto") -> RunConfig:
    """The resolved recipe of one run of a grid: what ``ffcl run`` makes of the same arguments."""
    cfg = RunConfig(scenario=load_scenario(scenario), strategy=load_strategy(cell.strategy), scenario_name=Path(scenario).stem,
                    strategy_name=Path(cell.strategy).stem, seed=cell.seed, device=device)
    return apply_overrides(cfg, [*overrides, *cell.settings])


RECIPE_KEYS = ("scenario_name", "strategy_name", "seed", "scenario", "strategy")  # what must match for a run to be reused


def _with_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """A run config with its learner's and plugins' defaults filled in, so that a recipe which states a
    default and one which leaves it out compare equal; its loggers and the recipes' descriptions left out
    (they change no result)."""
    from .strategies.registry import argument_defaults

    st = cfg["strategy"]
    defaults = argument_defaults(from_dict(StrategyConfig, st, "strategy"))
    learner_args = {**defaults["learner_args"], **st.get("learner_args", {})}
    plugins = {n: {**defaults["plugins"].get(n, {}), **(args or {})} for n, args in st.get("plugins", {}).items()}
    st = {k: v for k, v in st.items() if k not in ("loggers", "description")}  # not the recipe's behaviour
    sc = {k: v for k, v in cfg["scenario"].items() if k != "description"}
    return {**cfg, "scenario": sc, "strategy": {**st, "learner_args": learner_args, "plugins": plugins}}


def _check_same_recipe(run_dir: Path, wanted: RunConfig) -> None:
    """A one-line error if the run recorded in ``run_dir`` is not a run of ``wanted``."""
    have, want = (_with_defaults(to_dict(cfg)) for cfg in (load_run_config(run_dir), wanted))
    for key in RECIPE_KEYS:
        if have[key] != want[key]:
            diff = next((f"{key}.{k}: {have[key][k]!r} there, {want[key][k]!r} asked" for k in want[key] if have[key].get(k) != want[key][k]),
                        None) if isinstance(want[key], dict) else f"{key}: {have[key]!r} there, {want[key]!r} asked"
            raise ConfigError(f"{run_dir} holds a run of another recipe ({diff}); it is not reused: choose another --out "
                              "or move that run away")


EXECUTORS = ("local", "ray")
FAILED_HEADER = "ffcl compare: this run failed; what it printed on stderr follows.\n"  # marks the .failed.txt files ffcl wrote


def run_grid(
    scenario: str,
    cells: Sequence[Cell],
    out: Path,
    *,
    overrides: Sequence[str] = (),
    device: str = "auto",
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[Path], dict[Path, str]]:
    """Run every cell not finished yet under ``out``; return all run directories and, for the
    runs that failed, the last line their process printed (the other cells still run).

    Every run gets ``--threads`` = the cores divided by ``workers``, so a run gives the same
    numbers whichever executor runs it. ``local``: ``workers`` processes at a time, each pinned
    to its own share of the cores, each killed if this process dies (Linux). ``ray``: each run is
    a Ray task asking for that many CPUs, on the cluster at ``address`` (its nodes must see ``out``
    and the data on a shared file system) or, without one, on a Ray instance started here for the grid.

    Each run directory is locked (ffcl.files) while it is decided on and run: a run that another
    process (a second ``ffcl compare`` on the same ``out``, or an ``ffcl run --resume``) holds is
    waited for, then reused or resumed, never run twice or reported failed.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got '{executor}'")
    if address and executor != "ray":
        raise ConfigError("--address is the Ray cluster's: use it with --executor ray")
    for cell in cells:  # before anything runs or is written
        refuse_link(out / cell.dirname)
        if any((out / cell.dirname / name).exists() for name in ("metrics.json", "checkpoint.pt")):
            _check_same_recipe(out / cell.dirname, cell_config(scenario, cell, overrides, device))
        elif (out / cell.dirname).is_dir() and not _held(out / cell.dirname):
            _clear_unfinished(out / cell.dirname, cell_config(scenario, cell, overrides, device), delete=False)
    cores = usable_cpus()
    share = max(1, len(cores) // workers)
    with _ray_session(address, len(cores)) if executor == "ray" else contextlib.nullcontext():
        out.mkdir(parents=True, exist_ok=True)
        slots: queue.Queue[list[int]] = queue.Queue()
        for i in range(workers):
            slots.put(cores[(i * share) % len(cores):][:share] or cores[:share])

        def job(cell: Cell) -> tuple[int, str] | None:
            if executor == "ray":
                return _grid_run(scenario, cell, out, overrides, device, share, echo, None, _RAY_TASK[0])
            cpus = slots.get()
            try:
                return _grid_run(scenario, cell, out, overrides, device, share, echo, cpus if workers > 1 else None)
            finally:
                slots.put(cpus)

        with ThreadPoolExecutor(max_workers=len(cells) if executor == "ray" else workers) as pool:
            outcomes = list(pool.map(job, cells))
    failed = {}
    for cell, outcome in zip(cells, outcomes):
        run_dir = out / cell.dirname
        if outcome is None or outcome[0] == 0:
            continue
        code, stderr = outcome
        lines = [line for line in stderr.splitlines() if line.strip()]
        failed[run_dir] = lines[-1] if lines else f"exit status {code}"
        echo(f"{run_dir.name}: failed: {failed[run_dir]}")
    return [out / c.dirname for c in cells], failed


def _grid_run(scenario: str, cell: Cell, out: Path, overrides: Sequence[str], device: str, threads: int,
              echo: Callable[[str], None], cpus: list[int] | None,
              remote: Callable[[list[str], int], tuple[int, str]] | None = None) -> tuple[int, str] | None:
    """One cell of the grid, under its directory's lock: None if it finished earlier (reused), else
    the exit status and stderr of the run that finished or resumed it. Its .failed.txt is written
    on failure and, when it succeeds or is reused, an earlier one that ffcl wrote is removed."""
    run_dir = out / cell.dirname
    refuse_link(run_dir)
    run_dir.mkdir(exist_ok=True)
    lock = lock_run_dir(run_dir)
    if lock is None:
        echo(f"{run_dir.name}: another ffcl process is running it; waiting for it to finish")
        lock = lock_run_dir(run_dir, wait=True)
    assert lock is not None
    report = out / f"{run_dir.name}.failed.txt"
    try:
        if (run_dir / "metrics.json").exists():
            _check_same_recipe(run_dir, cell_config(scenario, cell, overrides, device))  # it may have been run meanwhile
            echo(f"{run_dir.name}: finished earlier, reused")
            _remove_failure_report(report)
            os.close(lock)
            return None
        args = ["run", "--quiet"]
        if (run_dir / "checkpoint.pt").exists():
            _check_same_recipe(run_dir, cell_config(scenario, cell, overrides, device))
            echo(f"{run_dir.name}: resuming")
            args += ["--resume", str(run_dir)]
        else:  # never started, or no experience finished: remove what ffcl wrote there, only that
            _clear_unfinished(run_dir, cell_config(scenario, cell, overrides, device))
            echo(f"{run_dir.name}: running")
            args += ["--scenario", scenario, "--strategy", cell.strategy, "--seed", str(cell.seed), "--device", device,
                     "--threads", str(threads), "--out", str(run_dir)]
            for o in [*overrides, *cell.settings]:
                args += ["--set", o]
        if remote is not None:  # elsewhere: this process holds the lock while it runs
            code, stderr = remote(args, threads)
        else:
            code, stderr = run_cell(args, threads, cpus, lock_fd=lock)
    except (ConfigError, RunError) as e:  # a run of another recipe, or files ffcl did not write: this cell only
        code, stderr = 2, f"ffcl: error: {e}\n"
    except BaseException:
        os.close(lock)
        raise
    try:
        if code == 0:
            _remove_failure_report(report)
        else:
            with atomic_path(report) as tmp:
                tmp.write_text(FAILED_HEADER + stderr)
    finally:
        os.close(lock)
    return code, stderr


def _remove_failure_report(report: Path) -> None:
    """Remove an earlier attempt's .failed.txt, only if ffcl wrote it (never through a link)."""
    if report.is_file() and not report.is_symlink():
        with open(report, errors="replace") as f:
            if f.read(len(FAILED_HEADER)) == FAILED_HEADER:
                report.unlink()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when the thread that started it ends
    (prctl PR_SET_PDEATHSIG, Linux), and exit at once if that happened before it was set."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def setup() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return setup


def run_cell(args: list[str], threads: int, cpus: list[int] | None = None, lock_fd: int | None = None,
             launcher_locked: bool = False) -> tuple[int, str]:
    """``ffcl <args>`` in a process of its own with ``threads`` BLAS/OpenMP threads (on ``cpus``
    if given); its exit status and what it printed on stderr. The process dies with this one
    (Linux); ``lock_fd``, the run directory's lock held here, is handed down to it
    (``launcher_locked``: the process that launched this one holds it, as under Ray)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop(LOCK_FD_ENV, None)
    if lock_fd is not None or launcher_locked:
        env[LOCK_FD_ENV] = str(lock_fd) if lock_fd is not None else LAUNCHER_LOCKED
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, "sched_setaffinity") else None
    die = _die_with_parent()

    def setup() -> None:
        for step in (die, pin):
            if step is not None:
                step()

    done = subprocess.run([sys.executable, "-m", "ffcl.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=env, preexec_fn=setup, pass_fds=() if lock_fd is None else (lock_fd,))
    return done.returncode, done.stderr


_RAY_TASK: list[Callable[[list[str], int], tuple[int, str]]] = []  # while a Ray session is open: runs a cell there


@contextlib.contextmanager
def _ray_session(address: str | None, cpus: int) -> Iterator[None]:
    """Connect to (or start) Ray for the grid; a cluster that cannot be reached is a one-line error,
    raised before the grid writes anything."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'ffcl[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         **({} if address else {"num_cpus": cpus}))
        except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError, ... for a bad address
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(f"--executor ray: cannot connect to Ray{f' at {address!r}' if address else ''} ({why}); "
                              "give the address of a running cluster (ray start --head prints it) or leave --address out") from None
    try:
        task = ray.remote(run_cell)

        def remote(args: list[str], threads: int) -> tuple[int, str]:
            return ray.get(task.options(num_cpus=threads).remote(args, threads, launcher_locked=True))

        _RAY_TASK.append(remote)
        yield
    finally:
        _RAY_TASK.clear()
        if started:
            ray.shutdown()


RUN_FILES = ("config.json", "log.txt", "metrics.csv")  # what an unfinished run has written before its first checkpoint


def _held(run_dir: Path) -> bool:
    """Whether another process holds ``run_dir``'s lock now (a live run)."""
    if not (run_dir / LOCK_FILE).exists():
        return False
    lock = lock_run_dir(run_dir)
    if lock is None:
        return True
    os.close(lock)
    return False


def _clear_unfinished(run_dir: Path, wanted: RunConfig, delete: bool = True) -> None:
    """Remove an unfinished run's own files (it stopped before its first checkpoint) so it can start
    again; refuse if the folder holds anything ffcl did not write: a file other than those, a link,
    or a config.json that is not this recipe's run. ``delete=False``: only check."""
    names = {p.name for p in run_dir.iterdir()} - {LOCK_FILE}
    others = sorted(n for n in names if n not in RUN_FILES or not (run_dir / n).is_file() or (run_dir / n).is_symlink())
    if not others and names and "config.json" not in names:
        others = sorted(names)  # ffcl writes config.json first: these are not a run of ffcl's
    if others:
        raise RunError(
            f"{run_dir} exists and holds files ffcl did not write ({', '.join(others[:3])}); "
            "move them away or choose another --out"
        )
    if names:
        _check_same_recipe(run_dir, wanted)
    for name in RUN_FILES if delete else ():
        (run_dir / name).unlink(missing_ok=True)


def summarize_runs(run_dirs: Sequence[Path], labels: dict[Path, str] | None = None) -> list[dict[str, Any]]:
    """One row per strategy (or per ``labels`` value: a recipe with its grid settings): mean and
    std over its runs (seeds) of every column."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in run_dirs:
        m = load_metrics(d)
        groups.setdefault((labels or {}).get(d, m["strategy"]), []).append(m)
    rows = []
    for strategy, runs in groups.items():
        row: dict[str, Any] = {"strategy": strategy, "scenario": runs[0]["scenario"], "seeds": [r["seed"] for r in runs]}
        for key, _, scale in COLUMNS:
            values = [r[key] * scale for r in runs if r.get(key) is not None]
            row[key] = statistics.fmean(values) if values else None
            row[key + "_std"] = statistics.stdev(values) if len(values) > 1 else 0.0 if values else None
        rows.append(row)
    return rows


def _cell(row: dict[str, Any], key: str) -> str:
    if row[key] is None:
        return "n/a"
    return f"{row[key]:.2f} ± {row[key + '_std']:.2f}" if len(row["seeds"]) > 1 else f"{row[key]:.2f}"


def format_markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (mean ± std over seeds)."""
    head = ["strategy", "seeds"] + [title for _, title, _ in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["strategy"], ",".join(map(str, r["seeds"]))] + [_cell(r, k) for k, _, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_failures(failed: dict[Path, str]) -> str:
    """The runs that failed, with the last line each printed."""
    return "\n".join(f"- {d.name}: {why} (all it printed: {d.name}.failed.txt)" for d, why in failed.items())


def write_comparison(rows: list[dict[str, Any]], out: Path, failed: dict[Path, str] | None = None, scenario: str = "") -> None:
    """comparison.md and comparison.csv in ``out``; failed runs are listed under the table."""
    title = rows[0]["scenario"] if rows else scenario
    text = f"# {title}: mean ± std over seeds\n\n{format_markdown(rows)}\n"
    if failed:
        text += f"\n## Failed runs (not in the table)\n\n{format_failures(failed)}\n"
    with atomic_path(out / "comparison.md") as tmp:  # whole files or none: never a half-written table
        tmp.write_text(text)
    keys = ["strategy", "seeds"] + [k for key, _, _ in COLUMNS for k in (key, key + "_std")]
    with atomic_path(out / "comparison.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "seeds": " ".join(map(str, r["seeds"]))})
