"""Reports of finished runs: text summaries, a Markdown report and PNG plots (matplotlib).

``ffcl report RUN_DIR [RUN_DIR...]`` writes ``report.md``: a title naming the scenarios, strategies and
seeds, a table, and these plots, each with a caption and a link to its full-size file: the
accuracy-matrix heat map of each run, the accuracy on each experience over time, the average
accuracy on the experiences seen so far for all runs on one chart, the anytime accuracy during
training (runs with ``anytime_every``) for all runs on one chart, the prequential (test-then-train)
accuracy of online runs, and the neurons each class owns for learners with neuron allocation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["format_summary", "format_matrix", "load_metrics", "report_title", "write_report"]

MAX_LABELLED = 12  # experiences up to which the matrix plot writes each number and names each curve


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}"


def format_matrix(matrix: list[list[float]]) -> str:
    """The accuracy matrix as text: row i = after training experience i, column j = test experience j."""
    n = len(matrix[0])
    head = "after \\ on " + " ".join(f"{'exp' + str(j):>6s}" for j in range(n))
    lines = [head] + [f"exp{i:<8d}" + " ".join(_pct(a) for a in row) for i, row in enumerate(matrix)]
    return "\n".join(lines)


def format_summary(m: dict[str, Any]) -> str:
    """The final summary table of one run (accuracies in %)."""
    rows = [
        ("final average accuracy (%)", _pct(m["final_average_accuracy"])),
        ("average forgetting (%)", _pct(m["average_forgetting"])),
        ("BWT (%)", _pct(m["bwt"])),
        ("forward transfer (%)", _pct(m.get("forward_transfer"))),
        ("plasticity (%)", _pct(m.get("plasticity"))),
        *([("prequential accuracy (%)", _pct(m["prequential"]["cumulative"])),
           (f"  last {m['prequential']['window']} samples (%)", _pct(m["prequential"]["last_window"]))]
          if m.get("prequential") else []),
        ("train time (s)", f"{m['train_time_s']:6.1f}"),
        ("wall time (s)", f"{m['wall_time_s']:6.1f}"),
        ("peak memory (MiB)", f"{m['peak_memory_mb']:6.0f}"),
    ]
    title = f"{m['strategy']} on {m['scenario']} (seed {m['seed']}, {m['device']})"
    body = "\n".join(f"  {k:<28s}{v}" for k, v in rows)
    return f"{title}\n{body}\naccuracy matrix (%):\n{format_matrix(m['accuracy_matrix'])}"


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A finished run's metrics.json (a one-line error if the run is not finished)."""
    from .experiment import RunError

    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise RunError(f"{run_dir} has no metrics.json: not a finished run (resume it with `ffcl run --resume {run_dir}`)")
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e}); it was damaged or not written by ffcl") from None
    if not isinstance(metrics, dict):
        raise RunError(f"{path} is not an ffcl metrics file (a JSON object was expected)")
    why = _malformed(metrics)
    if why:
        raise RunError(f"{path}: {why}; it was damaged or not written by ffcl")
    return metrics


NUMBERS = ("final_average_accuracy", "average_forgetting", "bwt", "forward_transfer", "plasticity",
           "train_time_s", "eval_time_s", "wall_time_s", "peak_memory_mb")  # numbers, or null where not defined
REPORTED = ("accuracy_matrix", "final_average_accuracy", "average_forgetting", "bwt", "train_time_s", "peak_memory_mb")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _malformed(m: dict[str, Any]) -> str | None:
    """What is wrong with a metrics.json's fields that reports and comparisons read, or None."""
    for key, kind in (("scenario", str), ("strategy", str), ("seed", int)):
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            return f"{key!r} is missing or not a {kind.__name__}"
    bad = next((k for k in NUMBERS if m.get(k) is not None and not _number(m[k])), None)
    if bad:
        return f"{bad!r} is {m[bad]!r}, not a number"
    a = m.get("accuracy_matrix")
    if a is not None and not (isinstance(a, list) and a and all(isinstance(r, list) and r and len(r) == len(a[0])
                                                                 and all(_number(x) or (x is None and j > i) for j, x in enumerate(r))
                                                                 for i, r in enumerate(a))):
        return "'accuracy_matrix' is not a non-empty table of numbers (null only above the diagonal: experiences not yet seen)"
    if m.get("kind") is not None and not isinstance(m["kind"], str):
        return "'kind' is not a string"
    points = {"anytime": ("samples", "accuracy", "experience"), "prequential": ("samples", "window", "cumulative")}
    any_curve = m.get("anytime")
    if any_curve and not (isinstance(any_curve, list) and all(isinstance(p, dict) and all(_number(p.get(k)) for k in points["anytime"]) for p in any_curve)):
        return "'anytime' is not a list of points (samples, accuracy, experience)"
    pre = m.get("prequential")
    if pre and not (isinstance(pre, dict) and _number(pre.get("window")) and all(pre.get(k) is None or _number(pre[k]) for k in ("cumulative", "last_window"))
                    and isinstance(pre.get("curve"), list) and all(isinstance(p, dict) and all(_number(p.get(k)) for k in points["prequential"]) for p in pre["curve"])):
        return "'prequential' is not a window, two accuracies and a curve of points"
    alloc = m.get("allocation")
    if alloc and not (isinstance(alloc, list) and all(isinstance(b, dict) and _number(b.get("free_neurons")) and isinstance(b.get("neurons_per_class"), dict)
                                                      and all(str(c).isdigit() and _number(v) for c, v in b["neurons_per_class"].items()) for b in alloc)):
        return "'allocation' is not a list of blocks (free_neurons, neurons_per_class)"
    return None


def _seen_average(matrix: list[list[float]]) -> list[float]:
    """Average accuracy on the experiences seen so far, after each training step."""
    if len(matrix) == 1:
        return [sum(matrix[0]) / len(matrix[0])]
    return [sum(row[: i + 1]) / (i + 1) for i, row in enumerate(matrix)]


def _label(m: dict[str, Any]) -> str:
    return f"{m['strategy']} (seed {m['seed']})"


def report_title(metrics: list[dict[str, Any]]) -> str:
    """The report's title: its scenarios (and their kinds), its strategies in run order, and its seeds."""
    scenarios = ", ".join(sorted({m["scenario"] for m in metrics}))
    kinds = sorted({m["kind"] for m in metrics if isinstance(m.get("kind"), str)})  # runs before the key existed have none
    strategies = ", ".join(dict.fromkeys(str(m["strategy"]) for m in metrics))
    seeds = sorted({m["seed"] for m in metrics})
    seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"
    kind_text = f" ({', '.join(kinds)})" if kinds else ""
    return f"Report: {scenarios}{kind_text}: {strategies}; {seed_text}"


def _run_name(run_dir: Path, m: dict[str, Any]) -> str:
    """The run directory's name, with its strategy and seed unless the name is ``STRATEGY-seedN``."""
    if run_dir.name == f"{m['strategy']}-seed{m['seed']}":
        return run_dir.name
    return f"{run_dir.name} ({m['strategy']}, seed {m['seed']})"


def _figure(name: str, title: str, caption: str) -> list[str]:
    """A plot that links to its full-size file, with its caption below it."""
    return [f"[![{title}]({name})]({name})", "", f"*{title}: {caption}*", ""]


def _save(fig: Any, ax: Any, path: Path, **axes: Any) -> None:
    """Label a one-panel chart, give it a legend, write it as a PNG and free it."""
    import matplotlib.pyplot as plt

    ax.set(**axes)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write ``report.md`` and its PNG plots into ``out``; return the report's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from .experiment import RunError, check_out_dir
    from .files import atomic_path

    runs = [(Path(d), load_metrics(d)) for d in run_dirs]
    for d, m in runs:
        missing = [k for k in REPORTED if k not in m or (k in ("accuracy_matrix", "train_time_s", "peak_memory_mb") and m[k] is None)]
        if missing:
            raise RunError(f"{d / 'metrics.json'} lacks {', '.join(missing)}; it was damaged or not written by ffcl")
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {report_title([m for _, m in runs])}", ""]
    lines += ["| run | final avg acc (%) | avg forgetting (%) | BWT (%) | train time (s) | peak memory (MiB) |",
              "|---|---|---|---|---|---|"]  # 6 columns: every one shows at 1280 px (tests/test_docs.py)
    for d, m in runs:
        lines.append(f"| {_run_name(d, m)} | {_pct(m['final_average_accuracy']).strip()} | "
                     f"{_pct(m['average_forgetting']).strip()} | {_pct(m['bwt']).strip()} | {m['train_time_s']:.1f} | {m['peak_memory_mb']:.0f} |")
    lines += ["", "Accuracy matrix: row i = after training experience i, column j = accuracy on experience j. "
              "Click a plot to open it at full size.", ""]

    fig, ax = plt.subplots(figsize=(6, 4))
    for _, m in runs:
        avg = _seen_average(m["accuracy_matrix"])
        ax.plot(range(1, len(avg) + 1), [100 * a for a in avg], marker="o", label=_label(m))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, ax, out / "average_accuracy.png", xlabel="experiences trained", ylabel="average accuracy on seen experiences (%)", ylim=(0, 100))
    lines += _figure("average_accuracy.png", "Average accuracy over experiences",
                     "the average accuracy on the experiences trained so far, after each experience, one line per run.")

    anytime = [(d, m) for d, m in runs if m.get("anytime")]
    if anytime:
        fig, ax = plt.subplots(figsize=(7, 4))
        for _, m in anytime:
            curve = m["anytime"]
            ax.plot([p["samples"] for p in curve], [100 * p["accuracy"] for p in curve], label=_label(m), lw=1.2)
        first = anytime[0][1]["anytime"]
        for a, b in zip(first, first[1:]):  # experience boundaries of the first run
            if b["experience"] != a["experience"]:
                ax.axvline(a["samples"], color="0.8", ls=":", lw=1)
        _save(fig, ax, out / "anytime_accuracy.png", xlabel="training samples seen",
              ylabel="accuracy on the experiences seen so far (%)", ylim=(0, 100), title="anytime accuracy")
        lines += _figure("anytime_accuracy.png", "Anytime accuracy",
                         "the accuracy on the test data of the experiences seen so far, measured during training "
                         "(dotted lines: experience boundaries).")

    prequential = [(d, m) for d, m in runs if m.get("prequential")]
    if prequential:
        fig, ax = plt.subplots(figsize=(7, 4))
        for _, m in prequential:
            curve = m["prequential"]["curve"]
            line, = ax.plot([p["samples"] for p in curve], [100 * p["window"] for p in curve], label=_label(m), lw=1.2)
            ax.plot([p["samples"] for p in curve], [100 * p["cumulative"] for p in curve], color=line.get_color(), lw=0.8, ls="--")
        _save(fig, ax, out / "prequential_accuracy.png", xlabel="training samples seen", ylabel="prequential accuracy (%)",
              ylim=(0, 100), title=f"test-then-train accuracy (solid: last {prequential[0][1]['prequential']['window']} samples; dashed: cumulative)")
        lines += ["| run | prequential accuracy, cumulative (%) | last window (%) |", "|---|---|---|"]
        lines += [f"| {d.name} | {_pct(m['prequential']['cumulative']).strip()} | {_pct(m['prequential']['last_window']).strip()} |"
                  for d, m in prequential]
        lines += [""] + _figure("prequential_accuracy.png", "Prequential accuracy",
                                "each arriving minibatch predicted before the learner trains on it (no test set), "
                                "over a sliding window (solid) and cumulatively (dashed).")

    for i, (d, m) in enumerate(runs):
        a = m["accuracy_matrix"]
        stem = f"{i:02d}-{d.name}"
        fig, ax = plt.subplots(figsize=(5.5, 4.5))  # the heat map and the curves apart: each stays legible on a phone
        pct = [[math.nan if x is None else 100 * x for x in row] for row in a]  # None: not evaluated (blank)
        im = ax.imshow(pct, vmin=0, vmax=100, cmap="viridis")
        for r, row in enumerate(a if len(a[0]) <= MAX_LABELLED else []):  # long streams: colours only
            for c, x in enumerate(row):
                if x is not None:
                    ax.text(c, r, f"{100 * x:.0f}", ha="center", va="center", color="w" if x < 0.6 else "k", fontsize=10)
        ax.set(title=f"{_label(m)}: accuracy matrix (%)", xlabel="test experience", ylabel="after training experience")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(out / f"{stem}-matrix.png", dpi=110)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for j in range(len(a[0])):
            ax.plot(range(1, len(a) + 1), [row[j] for row in pct], marker=".", label=f"exp {j}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        kw = dict(title=f"{_label(m)}: accuracy on each experience", xlabel="experiences trained", ylabel="accuracy (%)", ylim=(0, 100))
        if len(a[0]) <= MAX_LABELLED:
            _save(fig, ax, out / f"{stem}-curves.png", **kw)
        else:  # long streams: no legend
            ax.set(**kw)
            fig.tight_layout()
            fig.savefig(out / f"{stem}-curves.png", dpi=110)
            plt.close(fig)
        lines += [f"## {d.name}: {_label(m)}", ""]
        lines += _figure(f"{stem}-matrix.png", f"Accuracy matrix of {d.name}",
                         "row i: after training experience i; column j: accuracy (%) on experience j's test data.")
        lines += _figure(f"{stem}-curves.png", f"Accuracy on each experience, {d.name}",
                         "one line per experience's test data, after each training experience.")
        if m.get("allocation"):
            fig, ax = plt.subplots(figsize=(6, 3))
            width = 0.8 / len(m["allocation"])
            for b, block in enumerate(m["allocation"]):
                classes = sorted(block["neurons_per_class"], key=int)
                ax.bar([int(c) + b * width for c in classes], [block["neurons_per_class"][c] for c in classes],
                       width=width, label=f"block {b} ({block['free_neurons']} free)")
            _save(fig, ax, out / f"{stem}-neurons.png", title="neurons owned per class (each half)", xlabel="class", ylabel="neurons")
            lines += _figure(f"{stem}-neurons.png", f"Neurons per class, {d.name}",
                             "the neurons each class owns in each half of each block, and the free ones (neuron allocation).")
    path = out / "report.md"
    with atomic_path(path) as tmp:  # whole or not at all
        tmp.write_text("\n".join(lines))
    return path
