"""Ablation of the replay-free recipe (strategies/replay_free.toml): what its accuracy comes from.

Each variant is the recipe with some settings changed, run by ``ffcl compare``'s grid (one process
per run, resumable) on Split-MNIST and Split-Fashion-MNIST:

    python benchmarks/replay_free_ablation.py --seeds 0 --out benchmarks/results/replay_free_ablation

``--set KEY=VALUE`` (repeatable) changes every variant alike, e.g. the readout's shrinkage.

Writes <out>/<scenario>/<variant>-seed<N>/ run directories, <out>/ablation.md and
<out>/replay_free_ablation.json (all rows, the command and the machine).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ffcl.compare import COLUMNS, cell_config, format_markdown, grid_cells, run_grid, summarize_runs
from ffcl.config import ConfigError
from ffcl.experiment import dry_run
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)

RF = "strategy.learner_args"
VARIANTS = {  # name (also the run directory): overrides of the replay_free recipe (4000 units, standardised images)
    "recipe": [],
    "random": [f"{RF}.feature_experiences=0"],  # no FF training: the blocks keep their random initialisation
    "raw_images": [f"{RF}.standardize_input=false"],
    "raw_images_random": [f"{RF}.standardize_input=false", f"{RF}.feature_experiences=0"],
    "w2000": ["strategy.hidden=[2000]"],
    "w2000_random": ["strategy.hidden=[2000]", f"{RF}.feature_experiences=0"],
    "w2000_raw": ["strategy.hidden=[2000]", f"{RF}.standardize_input=false"],
    "w2000_raw_random": ["strategy.hidden=[2000]", f"{RF}.standardize_input=false", f"{RF}.feature_experiences=0"],
    "w1000_raw": ["strategy.hidden=[1000]", f"{RF}.standardize_input=false"],
    "two_blocks_raw": ["strategy.hidden=[2000,2000]", f"{RF}.standardize_input=false"],
    # the features keep learning on every experience: the statistics of old classes go stale
    "w2000_raw_every_exp": ["strategy.hidden=[2000]", f"{RF}.standardize_input=false", f"{RF}.feature_experiences=5"],
    "w2000_raw_ncm": ["strategy.hidden=[2000]", f"{RF}.standardize_input=false", f"{RF}.readout=ncm"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default="split_mnist,split_fmnist")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names from VARIANTS")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/replay_free_ablation"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="an override applied to every variant (as `ffcl run --set`), e.g. strategy.learner_args.shrinkage=1e-4")
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.dry_run:
        checked = check_benchmark(strategies=["replay_free"], scenarios=args.scenarios.split(","),
                                  names={"variant": (args.variants.split(","), VARIANTS)})
        streams: dict = {}
        for scenario in args.scenarios.split(","):  # the overrides apply to every variant: each run as `ffcl run --dry-run` checks it
            for name in args.variants.split(","):
                dry_run(cell_config(scenario, grid_cells(["replay_free"], seeds)[0], [*args.overrides, *VARIANTS[name]], "cpu"), streams)
        return print(checked)
    rows, text = [], []
    for scenario in args.scenarios.split(","):
        t = time.perf_counter()
        scenario_rows = []
        for name in args.variants.split(","):
            dirs, failed = run_grid(scenario, grid_cells(["replay_free"], seeds), args.out / scenario / name,
                                    overrides=[*args.overrides, *VARIANTS[name]], device="cpu")
            if failed:
                raise SystemExit(f"{name}: runs failed: {failed}")
            (row,) = summarize_runs(dirs)
            scenario_rows.append({**row, "strategy": name, "overrides": [*args.overrides, *VARIANTS[name]]})
        text.append(f"## {scenario} ({time.perf_counter() - t:.0f} s)\n\n{format_markdown(scenario_rows)}\n")
        print(text[-1], flush=True)
        rows += scenario_rows
    (args.out / "ablation.md").write_text("# replay_free ablation\n\n" + "\n".join(text))
    write_benchmark(args.out / "replay_free_ablation.json", seeds=seeds, columns=[c[0] for c in COLUMNS], rows=rows)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:  # a bad variant, recipe, data set or --set: one line, as validation_choice.py
        sys.exit(f"replay_free_ablation: error: {e}")
