"""The class-incremental comparison grid: BP baselines and FF learners on Split-MNIST and
Split-Fashion-MNIST, through ``ffcl compare`` (each run in its own process, resumable).

    python benchmarks/class_incremental.py --scenarios split_mnist,split_fmnist --seeds 0 --out benchmarks/results/ci
    python benchmarks/class_incremental.py --scenarios split_mnist --strategies sffa_alloc,sffa_replay --seeds 0,1,2

Writes <out>/<scenario>/comparison.{md,csv} and <out>/class_incremental.json (all rows, the
command and the machine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ffcl.compare import format_markdown, grid_cells, run_grid, summarize_runs, write_comparison
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)

GRID = "ncm,slda,genclass,replay_free,naive,ewc,si,lwf,replay,gem,agem,gdumb,joint,ff,sffa,sffa_alloc,sffa_replay"  # the replay-free anchors first: they stay in every table
MORE = "sffa_ewc,sffa_agem,sffa_alloc_shift,sffa_replay_shift"  # add with --strategies (A-GEM on SFFA alone takes ~13 min; the shift variants are for digits)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default="split_mnist,split_fmnist")
    p.add_argument("--strategies", default=GRID)
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ci"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.dry_run:
        return print(check_benchmark(strategies=args.strategies.split(","), scenarios=args.scenarios.split(",")))
    everything = []
    for scenario in args.scenarios.split(","):
        out = args.out / scenario
        t = time.perf_counter()
        dirs, failed = run_grid(scenario, grid_cells(args.strategies.split(","), seeds), out, device="cpu")
        rows = summarize_runs([d for d in dirs if d not in failed])
        write_comparison(rows, out, failed, scenario=scenario)
        print(f"## {scenario} ({time.perf_counter() - t:.0f} s)\n\n{format_markdown(rows)}\n", flush=True)
        everything += rows
    write_benchmark(args.out / "class_incremental.json", seeds=seeds, rows=everything)


if __name__ == "__main__":
    main()
