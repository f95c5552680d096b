"""Label-input FF learners at 10 and 100 classes: exhaustive candidate scoring against a cascade.

An FF learner that takes the label as input scores an image by one candidate pass per known class;
a cascade (the FF template's ``cascade`` option, ffcl.nn.ff.FFNet.set_cascade) keeps only the best
``k`` candidates after each block but the last, and a shortlist (``shortlist``, FFNet.set_shortlist)
lets only the candidates whose input class mean lies nearest the image enter the first block. For each learner recipe (``sffa``, ``df``, ``ff``,
at their own widths) and each class count, this script trains one epoch on ``--train`` images
(the recipe's hardest negatives; no plugins) exhaustively and with the cascade, each from the same
initial weights (``cascade`` mode: with the shortlist too, where ``--shortlist`` gives one for
that class count), then measures, side by side in this process:

- ``train_images_per_s``: that training epoch (scoring pass for hardest negatives, local update);
- ``eval_images_per_s``: ``model(x)`` over ``--test`` test images in chunks of 100, taking turns
  with a back-propagation MLP of the same widths (``bp_images_per_s``; best of ``--repeats``);
- ``accuracy`` on those test images, and with a shortlist ``shortlist_recall``: how often the true
  class is among the shortlisted candidates; for the cascade, ``accuracy_trained_exhaustively``:
  the exhaustively trained model scored through the same shortlist and cascade (the cost of the
  cascade at evaluation alone, without its training negatives).

10 classes: MNIST. 100 classes: MNIST under 10 fixed pixel permutations (ffcl.data.streams.permuted),
each permutation's digits ten new classes, trained jointly; ``--train`` and ``--test`` images are
drawn (seeded) from the whole set. The machine may be shared: compare numbers measured in one run.

    python benchmarks/many_classes.py --threads 1 --train 3000 --test 1000 --repeats 2 --out benchmarks/results/many_classes.json
    python benchmarks/many_classes.py --learners sffa --train 500 --test 200 --repeats 1   # quicker
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from avalanche.training.plugins import EvaluationPlugin

from _common import check_benchmark, test_accuracy, throughputs, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.config import load_strategy
from ffcl.data import TensorData, load_dataset, make_stream
from ffcl.data.streams import permuted
from ffcl.nn import MLP
from ffcl.strategies import build_strategy

CHUNK = 100  # test images per call


def subset(data: TensorData, n_train: int, n_test: int, seed: int) -> TensorData:
    """About ``n_train`` training and ``n_test`` test images of ``data``, the same number of each
    class (at least one), drawn without replacement from ``seed``."""
    g = torch.Generator().manual_seed(seed)

    def pick(y: torch.Tensor, n: int) -> torch.Tensor:
        per = max(1, n // data.num_classes)
        order = torch.randperm(len(y), generator=g)
        return torch.cat([order[y[order] == c][:per] for c in range(data.num_classes)])

    tr, te = pick(data.y_train, n_train), pick(data.y_test, n_test)
    tr = tr[torch.randperm(len(tr), generator=g)]
    return TensorData(data.name, data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te], data.class_names)


def shortlist_recall(model: torch.nn.Module, data: TensorData) -> float:
    """How often a test image's true class is among the ``model.shortlist`` candidates its input
    class means let into the first block (every class a candidate)."""
    classes = torch.arange(data.num_classes).expand(len(data.y_test), -1)
    with torch.no_grad():
        key = model.shortlist_key(model.encode(data.x_test), classes)
    return (key.topk(model.shortlist, 1).indices == data.y_test[:, None]).any(1).float().mean().item()


def parse_keep(text: str) -> dict[int, list[int]]:
    """``10=3,100=10:3`` -> {10: [3], 100: [10, 3]}: the cascade per class count."""
    out = {}
    for part in text.split(","):
        classes, ks = part.split("=")
        out[int(classes)] = [int(k) for k in ks.split(":")]
    return out


def run(name: str, data: TensorData, keep: list[int], shortlist: int, args: argparse.Namespace) -> list[dict]:
    """Exhaustive and cascaded (and shortlisted) rows for one learner recipe on ``data``."""
    cfg = load_strategy(name)
    cfg.epochs, cfg.plugins = 1, {}
    experience = make_stream(data, 1).train_stream[0]
    rows, models, initial = [], {}, None
    for mode in ("exhaustive", "cascade"):
        cfg.learner_args = {**cfg.learner_args, "cascade": keep[: len(cfg.hidden) - 1] if mode == "cascade" else [],
                            "shortlist": shortlist if mode == "cascade" else 0}
        torch.manual_seed(args.seed)
        strategy = build_strategy(cfg, input_shape=data.input_shape, num_classes=data.num_classes, evaluator=EvaluationPlugin(loggers=[]))
        if initial is None:
            initial = copy.deepcopy(strategy.model.state_dict())
        strategy.model.load_state_dict(initial, strict=False)  # the shortlist's class means (cascade mode) start empty
        t = time.perf_counter()
        strategy.train(experience)
        train_s = time.perf_counter() - t
        model = strategy.model.eval()
        models[mode] = model
        rows.append(dict(learner=name, classes=data.num_classes, mode=mode, cascade=list(model.cascade), shortlist=model.shortlist, hidden=list(cfg.hidden),
                         train_images_per_s=len(data.y_train) / train_s, accuracy=test_accuracy(model, data, CHUNK)))
        if model.shortlist:
            rows[-1]["shortlist_recall"] = shortlist_recall(model, data)
    scored = copy.deepcopy(models["exhaustive"])  # the exhaustively trained model, scored as the cascade scores
    scored.set_cascade(models["cascade"].cascade)
    scored.set_shortlist(shortlist)
    for x, y in zip(data.x_train.split(1000), data.y_train.split(1000)):
        scored.observe(x, y)
    rows[-1]["accuracy_trained_exhaustively"] = test_accuracy(scored, data, CHUNK)
    bp = MLP(data.input_shape, list(cfg.hidden), data.num_classes).eval()
    speeds = throughputs({**models, "bp": bp}, data.x_test, args.repeats, chunk=CHUNK)
    for row in rows:
        row.update(eval_images_per_s=speeds[row["mode"]], bp_images_per_s=speeds["bp"])
        row["eval_fraction_of_bp"] = row["eval_images_per_s"] / row["bp_images_per_s"]
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Evaluation and training throughput against the class count, per learner and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (learner, mode) in sorted({(r["learner"], r["mode"]) for r in rows}):
        mine = sorted((r for r in rows if r["learner"] == learner and r["mode"] == mode), key=lambda r: r["classes"])
        style = "-" if mode == "exhaustive" else "--"
        for ax, key in zip(axes, ("eval_images_per_s", "train_images_per_s")):
            ax.plot([r["classes"] for r in mine], [r[key] for r in mine], style, marker="o", label=f"{learner} {mode}")
    bp = sorted({(r["classes"], r["bp_images_per_s"]) for r in rows})
    axes[0].plot([c for c, _ in bp], [s for _, s in bp], ":", color="k", label="BP MLP (same widths)")
    for ax, title in zip(axes, ("evaluation", "training, hardest negatives")):
        ax.set(xscale="log", yscale="log", xlabel="classes", ylabel="images/s", title=title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--learners", default="sffa,df,ff", help="strategy recipes of label-input FF learners")
    p.add_argument("--classes", default="10,100", help="class counts: 10 (MNIST) and/or 100 (10 permutations of MNIST)")
    p.add_argument("--shortlist", default="100=10", help="the shortlist per class count (candidates that enter the first block; "
                                                         "none for a count not named)")
    p.add_argument("--keep", default="10=3:2,100=3:2", help="the cascade per class count (k after each block, ':'-separated; "
                                                           "cut to the recipe's blocks but the last)")
    p.add_argument("--train", type=int, default=3000, help="training images (one epoch)")
    p.add_argument("--test", type=int, default=2000, help="test images")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/many_classes.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    counts = [int(c) for c in args.classes.split(",")]
    keep = parse_keep(args.keep)
    shortlist = {c: ks[0] for c, ks in parse_keep(args.shortlist).items()} if args.shortlist else {}
    if any(c not in (10, 100) for c in counts) or any(c not in keep for c in counts):
        p.error(f"--classes takes 10 and/or 100, each with a cascade in --keep; got --classes {args.classes} --keep {args.keep}")
    if args.dry_run:
        return print(check_benchmark(strategies=args.learners.split(","), datasets=["mnist"]))
    if args.threads:
        torch.set_num_threads(args.threads)
    mnist = load_dataset("mnist")
    rows = []
    for c in counts:
        data = subset(mnist if c == 10 else permuted(mnist, 10, seed=args.seed), args.train, args.test, args.seed)
        for name in args.learners.split(","):
            rows += run(name, data, keep[c], shortlist.get(c, 0), args)
    write_benchmark(args.out, train_images=args.train, test_images=args.test, epochs=1, seed=args.seed,
                    threads=torch.get_num_threads(), results=rows)
    plot(rows, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
