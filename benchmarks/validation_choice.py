"""Choose a recipe value without the test set: each candidate is trained on part of the first
experience's training data and scored on the rest (a stratified validation split), the only data
a class-incremental learner has seen when its recipe must be fixed.

    python benchmarks/validation_choice.py --scenario split_mnist --strategy replay_free \
        --grid strategy.learner_args.shrinkage=1e-4,1e-3,1e-2,"oas" --seeds 0,1,2

Writes benchmarks/results/validation_choice_<scenario>_<strategy>.json: per candidate and seed the
validation accuracy, and the candidate chosen (the best mean; a tie within one standard error of
the best goes to the first candidate listed, so list the parameter-free one first to prefer it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from _common import check_benchmark, write_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from sklearn.model_selection import train_test_split

from ffcl.config import ConfigError, RunConfig, apply_overrides, load_scenario, load_strategy
from ffcl.data import TensorData, load_dataset, make_stream
from ffcl.data.loaders import dataset_tensors
from ffcl.metrics import accuracy_row
from ffcl.strategies import build_strategy


def first_experience_split(cfg: RunConfig, holdout: float) -> TensorData:
    """The first experience's training data of ``cfg``'s stream, split into train and validation."""
    sc = cfg.scenario
    data = load_dataset(sc.dataset)
    stream = make_stream(data, sc.n_experiences, shuffle_classes=sc.shuffle_classes, seed=cfg.seed, kind=sc.kind)
    x, y, _ = dataset_tensors(stream.benchmark.train_stream[0].dataset)
    xt, xv, yt, yv = train_test_split(x.numpy(), y.numpy(), test_size=holdout, random_state=cfg.seed, stratify=y.numpy())
    return TensorData(f"{data.name}-exp0-validation", torch.from_numpy(xt), torch.from_numpy(yt),
                      torch.from_numpy(xv), torch.from_numpy(yv), data.class_names)


def validation_accuracy(cfg: RunConfig, holdout: float) -> float:
    """Train ``cfg``'s strategy on the first experience's training part and score its validation part."""
    torch.manual_seed(cfg.seed)
    val = first_experience_split(cfg, holdout)
    stream = make_stream(val, 1, seed=cfg.seed)  # one experience: the seen classes, train and validation
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    strategy = build_strategy(cfg.strategy, input_shape=stream.input_shape, num_classes=len(val.class_names), evaluator=evaluator)
    strategy.train(stream.benchmark.train_stream[0])
    return accuracy_row(strategy.eval(stream.test_stream), 1)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="split_mnist")
    p.add_argument("--strategy", default="replay_free")
    p.add_argument("--grid", required=True, help="KEY=V1,V2,... (TOML values), as ffcl compare's --grid")
    p.add_argument("--seeds", default="0")
    p.add_argument("--holdout", type=float, default=0.2, help="the validation share of the first experience")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data; run nothing")
    args = p.parse_args()
    key, _, values = args.grid.partition("=")
    candidates = [v for v in values.split(",") if v]
    seeds = [int(s) for s in args.seeds.split(",")]
    if not key or len(candidates) < 2 or len(set(candidates)) != len(candidates):
        raise SystemExit("--grid takes KEY=V1,V2,... with two or more different values")
    configs = {v: [apply_overrides(RunConfig(scenario=load_scenario(args.scenario), strategy=load_strategy(args.strategy),
                                             scenario_name=args.scenario, strategy_name=args.strategy, seed=s, device="cpu"),
                                   [f"{key}={v}"]) for s in seeds] for v in candidates}
    if args.dry_run:
        print(check_benchmark(strategies=[args.strategy], scenarios=[args.scenario]))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, means = [], {}
    for value, cfgs in configs.items():
        accs = []
        for cfg in cfgs:
            accs.append(validation_accuracy(cfg, args.holdout))
            rows.append({"value": value, "seed": cfg.seed, "validation_accuracy": accs[-1]})
            print(f"{key}={value} seed {cfg.seed}: validation accuracy {accs[-1]:.4f}", flush=True)
        means[value] = (statistics.fmean(accs), statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else 0.0)
    best = max(means, key=lambda v: means[v][0])
    chosen = next(v for v in candidates if means[v][0] >= means[best][0] - means[best][1])
    print(f"chosen: {key}={chosen} (mean validation accuracy {means[chosen][0]:.4f}; best {best} {means[best][0]:.4f})")
    out = args.out or Path(__file__).parent / "results" / f"validation_choice_{args.scenario}_{args.strategy}.json"
    write_benchmark(out, scenario=args.scenario, strategy=args.strategy, key=key, seeds=seeds, holdout=args.holdout,
                    rows=rows, means={v: m for v, (m, _) in means.items()}, chosen=chosen)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:
        sys.exit(f"validation_choice: error: {e}")
