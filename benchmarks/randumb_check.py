"""Check ffcl's streaming ``randumb`` against the RanDumb authors' batch logic on the same arrays.

The reference follows drimpossible/RanDumb (``feats/get_feats.py`` and ``src/main.py``), written
here with scikit-learn: pixels in [0, 1] normalised by the training set's pixel mean and std,
``RBFSampler(gamma="scale", n_components=D)`` fitted on the normalised training set,
``LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=OAS())`` fitted on all of it at
once, and the mean per-class accuracy of the test predictions. ffcl's ``randumb`` recipe learns
the same data as a 5-experience class-incremental stream (Split-MNIST's split) and is scored the
same way on the same test set.

    python benchmarks/randumb_check.py --datasets mnist,fmnist --components 4000 --seed 0

Writes benchmarks/results/replay_free_anchors/randumb_check.json (or --out).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.covariance import OAS
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.kernel_approximation import RBFSampler
from sklearn.metrics import confusion_matrix

from ffcl.config import load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.strategies import build_strategy

from _common import check_benchmark, write_benchmark


def per_class_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over classes of the fraction of each class's test images predicted right (as main.py)."""
    m = confusion_matrix(y, pred)
    return float(np.mean(m.diagonal() / m.sum(axis=1)))


def authors(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, components: int, seed: int) -> float:
    """The authors' pipeline, fitted on the whole training set at once."""
    mean, std = x.mean(), x.std()
    x, xt = (x - mean) / std, (xt - mean) / std
    embed = RBFSampler(gamma="scale", n_components=components, random_state=seed).fit(x)
    lda = LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=OAS(assume_centered=False))
    lda.fit(embed.transform(x), y)
    return per_class_accuracy(yt, lda.predict(embed.transform(xt)))


def streaming(data, components: int, seed: int) -> float:
    """ffcl's randumb recipe over the 5-experience stream, scored on the whole test set."""
    stream = make_stream(data, n_experiences=5, seed=seed)
    cfg = load_strategy("randumb")
    cfg.learner_args = {**cfg.learner_args, "components": components, "seed": seed}
    strategy = build_strategy(cfg, input_shape=stream.input_shape, num_classes=stream.num_classes)
    for exp in stream.train_stream:
        strategy.train(exp)
    strategy.model.eval()
    with torch.no_grad():
        pred = torch.cat([strategy.model(b).argmax(1) for b in data.x_test.split(2048)])
    return per_class_accuracy(data.y_test.numpy(), pred.numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="mnist,fmnist")
    p.add_argument("--components", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (a quick trial)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/replay_free_anchors/randumb_check.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments, recipe and data sets; run nothing")
    args = p.parse_args()
    if args.dry_run:
        return print(check_benchmark(strategies=["randumb"], datasets=args.datasets.split(",")))
    rows = []
    for name in args.datasets.split(","):
        data = load_dataset(name)
        if args.limit:
            data = dataclasses.replace(data, x_train=data.x_train[:args.limit], y_train=data.y_train[:args.limit])
        x, xt = data.x_train.flatten(1).double().numpy(), data.x_test.flatten(1).double().numpy()
        t = time.perf_counter()
        ref = authors(x, data.y_train.numpy(), xt, data.y_test.numpy(), args.components, args.seed)
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        ours = streaming(data, args.components, args.seed)
        t_ours = time.perf_counter() - t
        rows.append({"dataset": name, "components": args.components, "seed": args.seed,
                     "authors_logic_acc": round(100 * ref, 2), "ffcl_randumb_acc": round(100 * ours, 2),
                     "difference": round(100 * (ours - ref), 2), "authors_time_s": round(t_ref, 1), "ffcl_time_s": round(t_ours, 1)})
        print(rows[-1], flush=True)
    write_benchmark(args.out, rows=rows)


if __name__ == "__main__":
    main()
