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

import csv
import itertools
import os
import queue
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ConfigError, RunConfig, apply_overrides, load_scenario, load_strategy, to_dict
from .experiment import RunError, load_run_config, usable_cpus
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


def _check_same_recipe(run_dir: Path, wanted: RunConfig) -> None:
    """A one-line error if the run recorded in ``run_dir`` is not a run of ``wanted``."""
    have, want = to_dict(load_run_config(run_dir)), to_dict(wanted)
    for key in RECIPE_KEYS:
        if have[key] != want[key]:
            diff = next((f"{key}.{k}: {have[key][k]!r} there, {want[key][k]!r} asked" for k in want[key] if have[key].get(k) != want[key][k]),
                        None) if isinstance(want[key], dict) else f"{key}: {have[key]!r} there, {want[key]!r} asked"
            raise ConfigError(f"{run_dir} holds a run of another recipe ({diff}); it is not reused: choose another --out "
                              "or move that run away")


EXECUTORS = ("local", "ray")


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
    to its own share of the cores. ``ray``: each run is a Ray task asking for that many CPUs, on
    the cluster at ``address`` (its nodes must see ``out`` and the data on a shared file system)
    or, without one, on a Ray instance started here for the grid.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got '{executor}'")
    if address and executor != "ray":
        raise ConfigError("--address is the Ray cluster's: use it with --executor ray")
    out.mkdir(parents=True, exist_ok=True)
    cores = usable_cpus()
    share = max(1, len(cores) // workers)
    jobs, dirs = [], []
    for cell in cells:  # before anything runs: a run to reuse or resume must be a run of this recipe
        if any((out / cell.dirname / name).exists() for name in ("metrics.json", "checkpoint.pt")):
            _check_same_recipe(out / cell.dirname, cell_config(scenario, cell, overrides, device))
    for cell in cells:
        run_dir = out / cell.dirname
        dirs.append(run_dir)
        if (run_dir / "metrics.json").exists():
            echo(f"{run_dir.name}: finished earlier, reused")
            continue
        args = ["run", "--quiet"]
        if (run_dir / "checkpoint.pt").exists():
            echo(f"{run_dir.name}: resuming")
            args += ["--resume", str(run_dir)]
        else:
            if run_dir.exists():  # started, but no experience finished: remove what ffcl wrote there, only that
                _clear_unfinished(run_dir)
            echo(f"{run_dir.name}: running")
            args += ["--scenario", scenario, "--strategy", cell.strategy, "--seed", str(cell.seed), "--device", device,
                     "--threads", str(share), "--out", str(run_dir)]
            for o in [*overrides, *cell.settings]:
                args += ["--set", o]
        jobs.append((run_dir, args))
    if executor == "ray":
        outcomes = _on_ray(jobs, share, address)
    else:
        slots: queue.Queue[list[int]] = queue.Queue()
        for i in range(workers):
            slots.put(cores[(i * share) % len(cores):][:share] or cores[:share])

        def local(job: tuple[Path, list[str]]) -> tuple[int, str]:
            cpus = slots.get()
            try:
                return run_cell(job[1], len(cpus), cpus if workers > 1 else None)
            finally:
                slots.put(cpus)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = list(pool.map(local, jobs))
    failed = {}
    for (run_dir, _), (code, stderr) in zip(jobs, outcomes):
        report = out / f"{run_dir.name}.failed.txt"
        if code == 0:
            report.unlink(missing_ok=True)  # from an earlier, failed attempt
            continue
        lines = [line for line in stderr.splitlines() if line.strip()]
        report.write_text(stderr)
        failed[run_dir] = lines[-1] if lines else f"exit status {code}"
        echo(f"{run_dir.name}: failed: {failed[run_dir]}")
    return dirs, failed


def run_cell(args: list[str], threads: int, cpus: list[int] | None = None) -> tuple[int, str]:
    """``ffcl <args>`` in a process of its own with ``threads`` BLAS/OpenMP threads (on ``cpus``
    if given); its exit status and what it printed on stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus and hasattr(os, "sched_setaffinity") else None
    done = subprocess.run([sys.executable, "-m", "ffcl.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=env, preexec_fn=pin)
    return done.returncode, done.stderr


def _on_ray(jobs: list[tuple[Path, list[str]]], threads: int, address: str | None) -> list[tuple[int, str]]:
    """Each job as a Ray task needing ``threads`` CPUs; outcomes in the order of ``jobs``."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'ffcl[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 **({} if address else {"num_cpus": len(usable_cpus())}))
    try:
        task = ray.remote(num_cpus=threads)(run_cell)
        return ray.get([task.remote(args, threads) for _, args in jobs])
    finally:
        if started:
            ray.shutdown()


RUN_FILES = ("config.json", "log.txt", "metrics.csv")  # what an unfinished run has written before its first checkpoint


def _clear_unfinished(run_dir: Path) -> None:
    """Remove an unfinished run's own files; refuse if the folder holds anything ffcl did not write."""
    others = sorted(p.name for p in run_dir.iterdir() if p.name not in RUN_FILES) if run_dir.is_dir() else [run_dir.name]
    if others:
        raise RunError(
            f"{run_dir} exists and holds files ffcl did not write ({', '.join(others[:3])}); "
            "move them away or choose another --out"
        )
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    run_dir.rmdir()


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
    (out / "comparison.md").write_text(text)
    keys = ["strategy", "seeds"] + [k for key, _, _ in COLUMNS for k in (key, key + "_std")]
    with open(out / "comparison.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "seeds": " ".join(map(str, r["seeds"]))})
