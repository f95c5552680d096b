"""Measure the DF loss alternatives of algorithms.md section 4 on joint MNIST (or any scenario).

The exact DF loss is not public; this script runs the proposals side by side through ``ffcl run``
(same seed, same budget) and writes their test accuracy and train time to JSON:

    python benchmarks/df_variants.py --scenario joint_mnist --epochs 1 --out benchmarks/results/df_variants.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)

VARIANTS = {
    "npair_k4_collab": [],  # the default: N-pair margin over 4 negatives, layer collaboration
    "npair_k4_local": ["strategy.learner_args.collaboration=false"],
    "npair_k1_collab": ["strategy.learner_args.n_negatives=1"],
    "npair_k4_hardest": ["strategy.learner_args.negatives=\"hardest\""],
    "npair_k9_all": ["strategy.learner_args.negatives=\"all\"", "strategy.learner_args.n_negatives=9"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default="joint_mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/df_variants.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    if args.dry_run:
        return print(check_benchmark(scenarios=[args.scenario], names={"variant": (args.variants.split(","), VARIANTS)}))
    results = []
    for name in args.variants.split(","):
        run_dir = Path(tempfile.mkdtemp(prefix="ffcl-df-")) / "run"
        cmd = [sys.executable, "-m", "ffcl.cli", "run", "--quiet", "--device", "cpu", "--scenario", args.scenario,
               "--strategy", "df", "--seed", str(args.seed), "--out", str(run_dir),
               "--set", f"strategy.epochs={args.epochs}"]
        for o in VARIANTS[name]:
            cmd += ["--set", o]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        m = json.loads((run_dir / "metrics.json").read_text())
        row = {"variant": name, "overrides": VARIANTS[name], "test_accuracy": m["final_average_accuracy"],
               "train_time_s": m["train_time_s"]}
        print(json.dumps(row), flush=True)
        results.append(row)
    write_benchmark(args.out, scenario=args.scenario, epochs=args.epochs, seed=args.seed, results=results)


if __name__ == "__main__":
    main()
