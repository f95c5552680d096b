"""Text summaries of finished runs (the plots and Markdown reports build on these)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_summary", "format_matrix"]


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
        ("train time (s)", f"{m['train_time_s']:6.1f}"),
        ("wall time (s)", f"{m['wall_time_s']:6.1f}"),
        ("peak memory (MiB)", f"{m['peak_memory_mb']:6.0f}"),
    ]
    title = f"{m['strategy']} on {m['scenario']} (seed {m['seed']}, {m['device']})"
    body = "\n".join(f"  {k:<28s}{v}" for k, v in rows)
    return f"{title}\n{body}\naccuracy matrix (%):\n{format_matrix(m['accuracy_matrix'])}"
