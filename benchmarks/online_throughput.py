"""Training throughput (samples/s), online and by epochs, through Avalanche and through a plain
PyTorch loop doing the same updates: the overhead of running a learner as an Avalanche strategy.

For each learner (SFFA, DF, Avalanche's Naive and Replay, all on the same hidden sizes) the same
two experiences of Split-MNIST (classes 0-4, then 5-9; a subset of ``--samples`` training images)
are learnt twice, side by side in this process: by the strategy ffcl builds (``strategy.train``,
with the evaluator of ``ffcl run``) and by a plain loop over resident tensors with a copy of the
same initial network and a fresh optimiser of the same kind. Online: one pass in minibatches of 10;
epochs: one epoch in minibatches of 128. Best of ``--repeats`` for each. The ratio
``avalanche_s / plain_s`` is the overhead (1.0 = none).

    python benchmarks/online_throughput.py --out benchmarks/results/online_throughput.json
    python benchmarks/online_throughput.py --learners sffa --modes online --samples 2000   # quicker
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics, timing_metrics
from avalanche.training.plugins import EvaluationPlugin

from ffcl.config import load_strategy
from ffcl.data import TensorData, load_dataset, make_stream
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.nn.ff import FFNet
from ffcl.strategies import build_strategy
from ffcl.strategies.ff_template import sample_negatives

LEARNERS = {"sffa": "sffa", "df": "df", "naive": "naive", "replay": "replay"}
MODES = {"online": (10, 1), "epochs": (128, 1)}  # batch size, epochs


def subset(data: TensorData, n: int, seed: int) -> TensorData:
    keep = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))[:n]
    return TensorData(data.name, data.x_train[keep], data.y_train[keep], data.x_test[:100], data.y_test[:100], data.class_names)


def build(recipe: str, hidden: list[int], batch: int, epochs: int, data: TensorData):
    cfg = load_strategy(recipe)
    cfg.hidden, cfg.batch_size, cfg.epochs = hidden, batch, epochs
    for args in cfg.plugins.values():  # replay: the buffer joins each minibatch with as many samples
        args.pop("batch_size_mem", None)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loss_metrics(stream=True),
                                 timing_metrics(experience=True), loggers=[])
    return build_strategy(cfg, input_shape=data.input_shape, num_classes=data.num_classes, evaluator=evaluator), cfg


def ff_loss(strategy, model: FFNet, x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The FF template's local losses, written out: the pre-update scoring pass the template makes
    (``training_scores``, or hardest negatives), positive + K negative labels, one fused backward.
    ``classes``: the candidates, worked out once per experience as the template does."""
    model.activate(y)
    scores = None
    if strategy.training_scores or strategy.negatives == "hardest":
        with torch.no_grad():
            scores = model.infer_scores(x, classes.expand(len(y), -1))
    labels = torch.cat([y[:, None], sample_negatives(y, classes, strategy.n_negatives, strategy.negatives, scores)], 1)
    acts = model.activities(x, labels)
    if len(classes) < 2:
        return sum(p.sum() * 0 for p in model.parameters())
    ctx = [None] * len(acts)
    if strategy.collaboration:
        g = model.goodness(acts).detach()
        ctx = [g.sum(-1) - g[..., i] for i in range(g.shape[-1])]
    return sum(model.objective.loss(a, c) for a, c in zip(acts, ctx))


def plain_loop(strategy, model: torch.nn.Module, cfg, experiences: list[tuple[torch.Tensor, torch.Tensor]], batch: int, epochs: int, mem_size: int) -> None:
    """The same updates as the strategy, as a plain loop over resident tensors (the same optimiser)."""
    opt = type(strategy.optimizer)(model.parameters(), **strategy.optimizer.defaults)
    memory: list[torch.Tensor] | None = None
    for x, y in experiences:
        seen = torch.cat([y, memory[1]]) if memory is not None else y
        if isinstance(model, FFNet):
            model.activate(seen)
            classes = model.active_classes()
        for _ in range(epochs):
            perm = torch.randperm(len(y))
            for i in range(0, len(y), batch):
                idx = perm[i : i + batch]
                xb, yb = x[idx], y[idx]
                if memory is not None:
                    m = torch.randint(len(memory[1]), (batch,))
                    xb, yb = torch.cat([xb, memory[0][m]]), torch.cat([yb, memory[1][m]])
                loss = ff_loss(strategy, model, xb, yb, classes) if isinstance(model, FFNet) else F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        if mem_size:
            keep = torch.randperm(len(y))[:mem_size]
            memory = [x[keep], y[keep]] if memory is None else [torch.cat([memory[0], x[keep]]), torch.cat([memory[1], y[keep]])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", default=",".join(LEARNERS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--hidden", default="400,400", help="hidden sizes shared by every learner")
    p.add_argument("--samples", type=int, default=6000, help="training images (two experiences)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/online_throughput.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    hidden = [int(h) for h in args.hidden.split(",")]
    if args.dry_run:
        return print(check_benchmark(datasets=["mnist"], names={"learner": (args.learners.split(","), LEARNERS),
                                                                    "mode": (args.modes.split(","), MODES)}))
    data = subset(load_dataset("mnist"), args.samples, args.seed)
    stream = make_stream(data, 2)
    tensors = [(data.x_train[torch.isin(data.y_train, torch.tensor(c))], data.y_train[torch.isin(data.y_train, torch.tensor(c))])
               for c in stream.classes_per_experience]
    rows = []
    for mode in args.modes.split(","):
        batch, epochs = MODES[mode]
        for name in args.learners.split(","):
            recipe = LEARNERS[name]
            best_avl = best_plain = float("inf")
            for r in range(args.repeats):
                torch.manual_seed(args.seed + r)
                strategy, cfg = build(recipe, hidden, batch, epochs, data)
                model = copy.deepcopy(strategy.model)
                mem = cfg.plugins.get("replay", {}).get("mem_size", 0)  # the buffer after experience 0
                t = time.perf_counter()
                for exp in stream.train_stream:
                    strategy.train(exp)
                best_avl = min(best_avl, time.perf_counter() - t)
                t = time.perf_counter()
                plain_loop(strategy, model, cfg, tensors, batch, epochs, mem)
                best_plain = min(best_plain, time.perf_counter() - t)
            row = {"learner": name, "mode": mode, "batch_size": batch, "epochs": epochs, "samples": args.samples,
                   "avalanche_s": best_avl, "plain_s": best_plain, "ratio": best_avl / best_plain,
                   "avalanche_samples_per_s": args.samples * epochs / best_avl, "plain_samples_per_s": args.samples * epochs / best_plain}
            rows.append(row)
            print(f"{mode:7s} {name:7s} avalanche {best_avl:7.2f} s ({row['avalanche_samples_per_s']:8.0f}/s) | "
                  f"plain {best_plain:7.2f} s ({row['plain_samples_per_s']:8.0f}/s) | ratio {row['ratio']:.2f}", flush=True)
    write_benchmark(args.out, seed=args.seed, hidden=hidden, rows=rows)


if __name__ == "__main__":
    main()
