"""``ffcl compare``: a grid of runs (strategies x seeds) on one scenario, summarised side by side.

Each run is an ordinary run directory made by ``ffcl run`` in its own process (so its peak memory
is its own). A grid directory is resumable: finished runs are reused, interrupted ones resumed.
The summary (mean ± std over seeds) is printed and written as ``comparison.md`` and
``comparison.csv``.
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .experiment import RunError
from .report import load_metrics

__all__ = ["run_grid", "summarize_runs", "format_markdown", "write_comparison", "COLUMNS"]

# (metrics.json key, column title, scale)
COLUMNS = [
    ("final_average_accuracy", "final avg acc (%)", 100.0),
    ("average_forgetting", "avg forgetting (%)", 100.0),
    ("bwt", "BWT (%)", 100.0),
    ("plasticity", "plasticity (%)", 100.0),
    ("train_time_s", "train time (s)", 1.0),
    ("peak_memory_mb", "peak memory (MiB)", 1.0),
]


def run_grid(
    scenario: str,
    strategies: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    *,
    overrides: Sequence[str] = (),
    device: str = "auto",
    echo: Callable[[str], None] = print,
) -> list[Path]:
    """Run every (strategy, seed) not finished yet under ``out``; return all run directories."""
    out.mkdir(parents=True, exist_ok=True)
    dirs = []
    for strategy in strategies:
        for seed in seeds:
            run_dir = out / f"{Path(strategy).stem}-seed{seed}"
            dirs.append(run_dir)
            if (run_dir / "metrics.json").exists():
                echo(f"{run_dir.name}: finished earlier, reused")
                continue
            cmd = [sys.executable, "-m", "ffcl.cli", "run", "--quiet"]
            if (run_dir / "checkpoint.pt").exists():
                echo(f"{run_dir.name}: resuming")
                cmd += ["--resume", str(run_dir)]
            else:
                if run_dir.exists():  # started, but no experience finished: remove what ffcl wrote there, only that
                    _clear_unfinished(run_dir)
                echo(f"{run_dir.name}: running")
                cmd += ["--scenario", scenario, "--strategy", strategy, "--seed", str(seed),
                        "--device", device, "--out", str(run_dir)]
                for o in overrides:
                    cmd += ["--set", o]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return dirs


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


def summarize_runs(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per strategy: mean and std over its runs (seeds) of every column."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in run_dirs:
        m = load_metrics(d)
        groups.setdefault(m["strategy"], []).append(m)
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


def write_comparison(rows: list[dict[str, Any]], out: Path) -> None:
    """comparison.md and comparison.csv in ``out``."""
    (out / "comparison.md").write_text(
        f"# {rows[0]['scenario']}: mean ± std over seeds\n\n{format_markdown(rows)}\n"
    )
    keys = ["strategy", "seeds"] + [k for key, _, _ in COLUMNS for k in (key, key + "_std")]
    with open(out / "comparison.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "seeds": " ".join(map(str, r["seeds"]))})
