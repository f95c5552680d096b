"""Offline (joint) accuracy, train time, evaluation throughput and peak memory of the FF learners
against a back-propagation MLP of the same size.

Each learner trains through ``ffcl run`` (its own process, so peak memory is its own) on the joint
scenario; the throughput is then measured side by side in this process on the trained model, the three taking
turns (best of 5 each): batched candidates (one pass over all labels), a Python loop over labels,
and an MLP of the same widths. Results go to a JSON file (and a line per run on stdout).

    python benchmarks/offline_accuracy.py --datasets mnist,fmnist --epochs sffa=10,df=6,ff=8,naive=5 \
        --set strategy.plugins.cosine_lr.min_ratio=0.0 --out benchmarks/results/offline_accuracy.json
    python benchmarks/offline_accuracy.py --datasets mnist --learners sffa --epochs sffa=1   # quicker

``--cascades 3,2`` also scores each trained label-input FF model through those candidate cascades
(``FFNet.set_cascade``; ``:`` separates the k of successive blocks): test accuracy on the whole test
set and throughput, taking turns with the others, in ``cascades`` beside the exhaustive figures.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ffcl.data import load_dataset
from _common import check_benchmark, test_accuracy, throughputs, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.experiment import load_learner
from ffcl.nn import MLP

CHUNK = 100  # images per inference call (x10 candidates = 1000 rows, the cache-friendly size)


def label_loop(model):
    """Inference as a Python loop over labels: one network pass per candidate class (same code path)."""
    classes = model.active_classes().tolist()

    def run(x):
        return torch.stack([model.infer_scores(x, torch.full((len(x), 1), c)).squeeze(1) for c in classes], 1)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,fmnist")
    p.add_argument("--learners", default="sffa,df,ff,naive", help="strategy recipes; naive = the BP MLP")
    p.add_argument("--epochs", default="", help="per-learner epochs, e.g. sffa=10,df=6 (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--eval-images", type=int, default=2000)
    p.add_argument("--cascades", default="", help="candidate cascades to score label-input FF models through too, "
                                                   "e.g. 3,2 or 3:2 (k after each block, ':'-separated)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/offline_accuracy.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()

    epochs = dict(item.split("=") for item in args.epochs.split(",") if item)
    cascades = [c for c in args.cascades.split(",") if c]
    if any(not all(k.isdigit() and int(k) > 0 for k in c.split(":")) for c in cascades):
        p.error(f"--cascades takes comma-separated cascades of positive integers (':' between blocks), got '{args.cascades}'")
    if args.dry_run:
        learners = args.learners.split(",")
        return print(check_benchmark(strategies=learners, datasets=args.datasets.split(","),
                                     names={"--epochs learner": (epochs, learners)}))
    results = []
    for dataset in args.datasets.split(","):
        data = load_dataset(dataset)
        x = data.x_test[: args.eval_images]
        for learner in args.learners.split(","):
            run_dir = Path(tempfile.mkdtemp(prefix="ffcl-bench-")) / "run"
            cmd = [sys.executable, "-m", "ffcl.cli", "run", "--scenario", f"joint_{dataset}", "--strategy", learner,
                   "--seed", str(args.seed), "--device", "cpu", "--out", str(run_dir), "--quiet"]
            for o in args.overrides + ([f"strategy.epochs={epochs[learner]}"] if learner in epochs else []):
                cmd += ["--set", o]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            metrics = json.loads((run_dir / "metrics.json").read_text())
            cfg = json.loads((run_dir / "config.json").read_text())["strategy"]
            with contextlib.redirect_stdout(io.StringIO()):
                model = load_learner(run_dir).model.eval()
            bp = MLP(data.input_shape, cfg["hidden"], data.num_classes).eval()
            row = {
                "dataset": dataset,
                "strategy": learner,
                "hidden": cfg["hidden"],
                "epochs": metrics.get("epochs", cfg["epochs"]),
                "batch_size": cfg["batch_size"],
                "test_accuracy": metrics["final_average_accuracy"],
                "train_time_s": metrics["train_time_s"],
                "peak_memory_mb": metrics["peak_memory_mb"],
            }
            fns = {"eval": model, "bp_mlp": bp} | ({"label_loop": label_loop(model)} if hasattr(model, "scores") else {})
            variants = {}
            for spec in cascades if hasattr(model, "set_cascade") else []:
                variants[spec] = copy.deepcopy(model)
                variants[spec].set_cascade([int(k) for k in spec.split(":")])
            speeds = throughputs(fns | {f"cascade {spec}": m for spec, m in variants.items()}, x, chunk=CHUNK)
            row |= {f"{name}_images_per_s": speeds[name] for name in fns}
            if hasattr(model, "scores"):
                row["throughput_vs_bp"] = row["eval_images_per_s"] / row["bp_mlp_images_per_s"]
                row["throughput_vs_label_loop"] = row["eval_images_per_s"] / row["label_loop_images_per_s"]
            if variants:
                row["exhaustive_test_accuracy"] = test_accuracy(model, data, CHUNK)
                row["cascades"] = [{"cascade": list(m.cascade), "test_accuracy": test_accuracy(m, data, CHUNK),
                                    "eval_images_per_s": speeds[f"cascade {spec}"],
                                    "throughput_vs_bp": speeds[f"cascade {spec}"] / row["bp_mlp_images_per_s"]}
                                   for spec, m in variants.items()]
            print(json.dumps(row), flush=True)
            results.append(row)

    write_benchmark(args.out, seed=args.seed, results=results)


if __name__ == "__main__":
    main()
