"""StreamLearner on a 60,000-sample MNIST stream: throughput, prequential accuracy, and agreement
with ``ffcl run`` on the same online stream.

The stream is online Split-MNIST (classes 0-1, 2-3, ..., 8-9, each experience's samples in a
seeded random order) fed to ``StreamLearner.partial_fit`` in batches of ``--batch`` (32), each
batch predicted before it is learnt. For each recipe (SFFA, and a back-propagation MLP of the
same hidden sizes, Avalanche's Naive), side by side in this process:

* ``samples_per_s``: stream samples through ``partial_fit`` per second (prediction included);
* ``prequential_accuracy``: test-then-train accuracy over the whole stream;
* ``final_average_accuracy``: mean test accuracy over the five experiences after the stream;
* the same recipe through ``ffcl run`` (``run_experiment``) on ``online_split_mnist`` with
  ``online_batch_size`` = ``--batch``: its final average and prequential accuracy, and the
  differences (the issue's target: within 2 points).

    python benchmarks/stream_learner.py --out benchmarks/results/stream_learner.json
    python benchmarks/stream_learner.py --samples 6000 --recipes naive   # quicker
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

from ffcl import StreamLearner
from ffcl.config import RunConfig, load_scenario, load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.data.loaders import dataset_tensors
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.experiment import run_experiment


def stream_batches(stream, batch: int, seed: int, limit: int):
    """The online stream's training samples, experience after experience, shuffled within each."""
    g = torch.Generator().manual_seed(seed)
    left = limit
    for exp in stream.train_stream:
        x, y, _ = dataset_tensors(exp.dataset)
        order = torch.randperm(len(y), generator=g)[: max(0, min(len(y), left))]
        left -= len(order)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            yield x[idx].numpy(), y[idx].numpy()


def final_average(learner: StreamLearner, stream) -> float:
    accs = []
    for exp in stream.test_stream:
        x, y, _ = dataset_tensors(exp.dataset)
        accs.append(float(learner.score(x.numpy(), y.numpy())))
    return sum(accs) / len(accs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="sffa,naive")
    p.add_argument("--hidden", default="1400,1400", help="hidden sizes of every recipe (the same size for all)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--samples", type=int, default=60000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-run", action="store_true", help="skip the `ffcl run` comparison")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/stream_learner.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    if args.dry_run:
        return print(check_benchmark(strategies=args.recipes.split(","), scenarios=["online_split_mnist"], datasets=["mnist"]))
    warnings.simplefilter("ignore")
    hidden = [int(h) for h in args.hidden.split(",")]
    data = load_dataset("mnist")
    stream = make_stream(data, 5, seed=args.seed, online=True)
    results = {}
    for recipe in args.recipes.split(","):
        learner = StreamLearner(recipe, hidden=hidden, batch_size=args.batch, seed=args.seed)
        t0 = time.perf_counter()
        learner.learn_stream(stream_batches(stream, args.batch, args.seed, args.samples), report_every=10000)
        seconds = time.perf_counter() - t0
        r = {"samples": learner.prequential_.samples, "seconds": seconds, "samples_per_s": learner.prequential_.samples / seconds,
             "prequential_accuracy": learner.prequential_accuracy_, "final_average_accuracy": final_average(learner, stream)}
        print(f"{recipe}: {r['samples_per_s']:.0f} samples/s, prequential {r['prequential_accuracy']:.4f}, "
              f"final average {r['final_average_accuracy']:.4f}", flush=True)
        if not args.no_run and args.samples >= len(data.y_train):
            strategy = load_strategy(recipe)
            strategy.hidden = hidden
            scenario = load_scenario("online_split_mnist")
            scenario.online_batch_size, scenario.anytime_every = args.batch, None
            cfg = RunConfig(scenario=scenario, strategy=strategy, scenario_name="online_split_mnist",
                            strategy_name=recipe, seed=args.seed, device="cpu")
            with tempfile.TemporaryDirectory() as tmp:
                m = run_experiment(cfg, Path(tmp) / "run", quiet=True)
            r["ffcl_run"] = {"final_average_accuracy": m["final_average_accuracy"], "prequential_accuracy": m["prequential"]["cumulative"],
                             "train_time_s": m["train_time_s"], "samples_per_s": args.samples / m["train_time_s"]}
            r["final_average_difference_points"] = 100 * (r["final_average_accuracy"] - m["final_average_accuracy"])
            r["prequential_difference_points"] = 100 * (r["prequential_accuracy"] - m["prequential"]["cumulative"])
            print(f"  ffcl run: final average {m['final_average_accuracy']:.4f}, prequential {m['prequential']['cumulative']:.4f}, "
                  f"{r['ffcl_run']['samples_per_s']:.0f} samples/s", flush=True)
        results[recipe] = r
    names = list(results)
    ratio = {f"{a}/{b}": results[a]["samples_per_s"] / results[b]["samples_per_s"] for a in names for b in names if a < b}
    write_benchmark(args.out, hidden=hidden, batch=args.batch, seed=args.seed, results=results, throughput_ratios=ratio)


if __name__ == "__main__":
    main()
