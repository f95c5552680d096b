"""Training speed of each learner through ``ffcl``'s Avalanche strategy, with the fused Adam update
ffcl uses against PyTorch's default Adam, side by side in this process.

For each learner recipe (at its own sizes), one epoch over ``--samples`` joint-MNIST training
images in minibatches of the recipe's size, ``--repeats`` times alternating the two optimisers
(each run starts from the same initial weights); best of the repeats. The ratio
``default_s / fused_s`` is the speed-up of the fused update.

    python benchmarks/train_speed.py --out benchmarks/results/train_speed.json
    python benchmarks/train_speed.py --learners sffa --samples 2000   # quicker
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from avalanche.training.plugins import EvaluationPlugin

from ffcl.config import load_strategy
from ffcl.data import TensorData, load_dataset, make_stream
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.strategies import build_strategy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", default="sffa,df,ff,naive", help="strategy recipes")
    p.add_argument("--samples", type=int, default=6000, help="training images per epoch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    if args.dry_run:
        return print(check_benchmark(strategies=args.learners.split(","), datasets=["mnist"]))
    full = load_dataset("mnist")
    data = TensorData("mnist", full.x_train[: args.samples], full.y_train[: args.samples], full.x_test[:100], full.y_test[:100], full.class_names)
    experience = make_stream(data, 1).train_stream[0]
    rows = []
    for name in args.learners.split(","):
        cfg = load_strategy(name)
        cfg.epochs, cfg.plugins = 1, {}
        torch.manual_seed(args.seed)
        strategy = build_strategy(cfg, input_shape=data.input_shape, num_classes=data.num_classes,
                                  evaluator=EvaluationPlugin(loggers=[]))
        initial = copy.deepcopy(strategy.model.state_dict())
        best = {"fused": float("inf"), "default": float("inf")}
        for _ in range(args.repeats):
            for kind in best:
                strategy.model.load_state_dict(initial)
                strategy.optimizer = type(strategy.optimizer)(
                    strategy.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=kind == "fused")
                t = time.perf_counter()
                strategy.train(experience)
                best[kind] = min(best[kind], time.perf_counter() - t)
        row = {"learner": name, "hidden": cfg.hidden, "batch_size": cfg.batch_size, "samples": args.samples,
               "fused_s": best["fused"], "default_s": best["default"], "speedup": best["default"] / best["fused"],
               "fused_samples_per_s": args.samples / best["fused"]}
        rows.append(row)
        print(f"{name:6s} {cfg.hidden} fused Adam {best['fused']:6.2f} s ({row['fused_samples_per_s']:6.0f}/s) | "
              f"default Adam {best['default']:6.2f} s | speed-up {row['speedup']:.2f}x", flush=True)
    write_benchmark(args.out, seed=args.seed, rows=rows)


if __name__ == "__main__":
    main()
