"""A 50-experience class-incremental stream: resident memory and time per experience, and a check
that memory stays flat.

The stream: MNIST under 10 pixel permutations (the identity first) is 100 classes ("p3-7": digit 7
under permutation 3), learnt two classes per experience, 50 experiences, with
``--train-per-class`` training and ``--test-per-class`` test images per class (0: the whole test set; written as an
``npz`` user data set, so every run is an ordinary ``ffcl run``, each learner in its own process,
with its run directory and report). After each experience the run records the process's resident memory
(``resident_memory_mb`` in metrics.json). A learner passes if its growth from experience
``--warmup`` to the last is at most what it is meant to keep, plus ``--tolerance-mb`` for the
allocator: the replay buffer filling up, and its per-class state (``kept_bytes``: class means,
a VAE per class). Exit status 1 if any learner fails.

    python benchmarks/long_stream.py --out benchmarks/results/long_stream.json --plot docs/long_stream_memory.png
    python benchmarks/long_stream.py --learners naive --experiences 10        # quicker

After each experience the run evaluates the test experiences trained so far (``--evaluate seen``,
the scenario key ``evaluate``; ``all``: the whole test stream, as Avalanche's ``eval(test_stream)``,
twice the evaluation). ``--learner-arg KEY=VALUE`` sets a learner argument for every learner that takes it (e.g. the label-input
FF learners' ``shortlist=10`` and ``cascade=[3]``, ffcl.nn.ff.FFNet); ``wall_time_s`` is each run's
whole time (start-up, training, the evaluations, and the checkpoint written after every experience).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ffcl.config import load_strategy
from ffcl.data import load_dataset
from _common import check_benchmark, write_benchmark  # noqa: E402 (benchmarks/_common.py)
from ffcl.strategies import build_strategy
from ffcl.strategies.registry import argument_defaults


def permuted_mnist_npz(path: Path, n_classes: int, train_per_class: int, test_per_class: int, seed: int) -> int:
    """The first ``n_classes`` of MNIST's digits under pixel permutations (10 per permutation,
    the identity first) as one data set; ``test_per_class`` 0 splits each digit's test images
    among the 10 permutations, so the whole test set is used once."""
    mnist = load_dataset("mnist")
    g = np.random.default_rng(seed)
    xs, ys, xts, yts, names = [], [], [], [], []
    for p in range(-(-n_classes // 10)):
        perm = np.arange(784) if p == 0 else g.permutation(784)
        for digit in range(min(10, n_classes - 10 * p)):
            train = np.flatnonzero(mnist.y_train.numpy() == digit)[p * train_per_class : (p + 1) * train_per_class]
            tests = np.flatnonzero(mnist.y_test.numpy() == digit)
            test = tests[p * test_per_class : (p + 1) * test_per_class] if test_per_class else np.array_split(tests, 10)[p]
            xs.append(mnist.x_train.numpy().reshape(-1, 784)[train][:, perm])
            xts.append(mnist.x_test.numpy().reshape(-1, 784)[test][:, perm])
            ys.append(np.full(len(train), 10 * p + digit))
            yts.append(np.full(len(test), 10 * p + digit))
            names.append(f"p{p}-{digit}")
    to_u8 = lambda a: (np.concatenate(a).reshape(-1, 28, 28) * 255).round().astype(np.uint8)  # noqa: E731
    np.savez(path, x=to_u8(xs), y=np.concatenate(ys), x_test=to_u8(xts), y_test=np.concatenate(yts), class_names=np.array(names))
    return n_classes


def allowance_mb(cfg, metrics: dict, new_experiences: int, n_classes: int) -> float:
    """What a learner is meant to keep beyond its state at the warm-up: a replay buffer filling
    up (at most the whole buffer), per-class state for the classes that arrive after it, and
    for EWC in its default "separate" mode a copy of the parameters and their importances per
    experience (Avalanche keeps one per experience by design)."""
    replay = cfg.plugins.get("replay", {}).get("mem_size", 0)
    buffer = replay * (784 * 4 + 16)
    per_class = metrics.get("kept_bytes", {}).get("per_class", 0) * 2 * new_experiences
    ewc = 0
    if cfg.plugins.get("ewc", {}).get("mode", "separate") == "separate" and "ewc" in cfg.plugins:
        model = build_strategy(cfg, input_shape=(1, 28, 28), num_classes=n_classes).model
        ewc = 2 * sum(p.numel() * p.element_size() for p in model.parameters()) * new_experiences
    return (buffer + per_class + ewc) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--learners", default="sffa,df,sffa_alloc,naive,replay,ewc,replay_free")
    p.add_argument("--experiences", type=int, default=50)
    p.add_argument("--train-per-class", type=int, default=100)
    p.add_argument("--test-per-class", type=int, default=10,
                   help="test images per class; 0: all of MNIST's test set, each digit's images split among the 10 permutations")
    p.add_argument("--hidden", default="400,400", help="hidden sizes of every learner (replay_free: the first)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--evaluate", choices=("seen", "all"), default="seen",
                   help="after each experience evaluate the test experiences trained so far (seen) or every one (all); "
                        "the scenario key evaluate")
    p.add_argument("--warmup", type=int, default=5, help="experiences before memory is expected to be flat")
    p.add_argument("--learner-arg", dest="learner_args", action="append", default=[],
                   help="KEY=VALUE (a TOML value): a learner argument for every learner that takes it (repeatable)")
    p.add_argument("--tolerance-mb", type=float, default=64.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, help="where the run directories go (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/long_stream.json"))
    p.add_argument("--plot", type=Path, help="write the resident memory per experience of every learner here (PNG)")
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipes and data sets; run nothing")
    args = p.parse_args()
    hidden = [int(h) for h in args.hidden.split(",")]
    if any("=" not in a for a in args.learner_args):
        p.error(f"--learner-arg takes KEY=VALUE, got {args.learner_args}")
    if args.dry_run:
        return print(check_benchmark(strategies=args.learners.split(","), datasets=["mnist"]))
    runs = args.runs or Path(tempfile.mkdtemp(prefix="ffcl-long-stream-"))
    runs.mkdir(parents=True, exist_ok=True)
    n_classes = permuted_mnist_npz(runs / "permuted_mnist.npz", 2 * args.experiences, args.train_per_class,
                                   args.test_per_class, args.seed)
    (runs / "scenario.toml").write_text(
        f'dataset = "npz:{runs / "permuted_mnist.npz"}"\nn_experiences = {args.experiences}\n'
        f"classes_per_experience = {[2] * args.experiences}\nepochs = {args.epochs}\nevaluate = \"{args.evaluate}\"\n"
    )
    results, failed = {}, []
    for name in args.learners.split(","):
        strategy = load_strategy(name)
        sets = [f"strategy.hidden={hidden[:1] if strategy.learner == 'dc_lda' else hidden}"]
        takes = argument_defaults(strategy)["learner_args"]
        sets += [f"strategy.learner_args.{a}" for a in args.learner_args if a.split("=")[0] in takes]
        if "allocation" in strategy.plugins:
            sets.append(f"strategy.plugins.allocation.max_classes={n_classes}")
        cmd = [sys.executable, "-m", "ffcl.cli", "run", "--scenario", str(runs / "scenario.toml"), "--strategy", name,
               "--seed", str(args.seed), "--device", "cpu", "--out", str(runs / name), "--quiet"]
        start = time.perf_counter()
        subprocess.run(cmd + [a for s in sets for a in ("--set", s)], check=True, stdout=subprocess.DEVNULL)  # its own process
        wall = time.perf_counter() - start
        m = json.loads((runs / name / "metrics.json").read_text())
        rss = m["resident_memory_mb"]
        growth = rss[-1] - rss[args.warmup - 1]
        strategy.hidden = hidden[:1] if strategy.learner == "dc_lda" else hidden
        allowed = allowance_mb(strategy, m, args.experiences - args.warmup, n_classes) + args.tolerance_mb
        ok = growth <= allowed
        failed += [] if ok else [name]
        results[name] = {"resident_memory_mb": rss, "growth_after_warmup_mb": growth, "allowed_mb": allowed, "flat": ok,
                         "peak_memory_mb": m["peak_memory_mb"], "train_time_per_experience_s": m["train_time_per_experience_s"],
                         "final_average_accuracy": m["final_average_accuracy"], "wall_time_s": wall,
                         "learner_args": sets[1:], "run_dir": str(runs / name)}
        print(f"{name}: resident {rss[0]:.0f} -> {rss[-1]:.0f} MiB, growth after experience {args.warmup} {growth:+.1f} MiB "
              f"(allowed {allowed:.1f}): {'flat' if ok else 'GROWS'}; train {sum(m['train_time_per_experience_s']):.0f} s, "
              f"wall {wall:.0f} s; "
              f"final accuracy {100 * m['final_average_accuracy']:.2f}%", flush=True)
    write_benchmark(args.out, experiences=args.experiences, classes=n_classes, hidden=hidden, train_per_class=args.train_per_class,
                    test_per_class=args.test_per_class, epochs=args.epochs, evaluate=args.evaluate, warmup=args.warmup, results=results, failed=failed)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for name, r in results.items():
            ax.plot(range(1, len(r["resident_memory_mb"]) + 1), r["resident_memory_mb"], label=name, lw=1.2)
        ax.set(xlabel="experiences trained", ylabel="resident memory (MiB)",
               title=f"{args.experiences} experiences of 2 classes ({n_classes} classes), each learner in its own process")
        ax.legend(fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    if failed:
        sys.exit(f"memory grew beyond what the learner keeps: {', '.join(failed)}")


if __name__ == "__main__":
    main()
