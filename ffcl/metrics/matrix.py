"""Continual-learning summaries computed from the accuracy matrix.

``a[i][j]`` is the test accuracy on experience ``j`` after training experience ``i`` (rows: the
T training steps, columns: the T test experiences). Definitions follow Lopez-Paz and Ranzato
(2017, GEM, Sec. 5) for the average accuracy and BWT, and Chaudhry et al. (2018, RWalk, Sec. 4)
for forgetting. They are computed here, not read from Avalanche's forgetting metrics, because
those are undefined on online sub-experiences (see docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["average_accuracy", "accuracy_drop", "average_forgetting", "backward_transfer", "forward_transfer", "plasticity", "summarize"]

Matrix = Sequence[Sequence[float | None]]  # None: an experience not evaluated at that step


def average_accuracy(a: Matrix) -> float:
    """A_T = (1/T) sum_j a[T-1][j]: mean accuracy over all experiences after the last step (over
    those evaluated, when the last row has gaps)."""
    done = [v for v in a[-1] if v is not None]
    return sum(done) / len(done)


def accuracy_drop(a: Matrix, columns: int) -> float:
    """Mean accuracy on the first ``columns`` experiences in the first row minus that in the last:
    what the later training cost them (``ffcl adapt``'s forgetting of the run's experiences, whose
    first row is the learner before adapting)."""
    before, after = a[0][:columns], a[-1][:columns]
    return sum(before) / len(before) - sum(after) / len(after)


def average_forgetting(a: Matrix) -> float | None:
    """F_T = 1/(T-1) sum_{j<T-1} max_{i<T-1} (a[i][j] - a[T-1][j]), for i >= j (Chaudhry et al. 2018).

    None when there is no earlier step to forget from (fewer than two rows).
    """
    t = len(a)
    if t < 2:
        return None
    return sum(max(a[i][j] for i in range(j, t - 1)) - a[-1][j] for j in range(t - 1)) / (t - 1)


def backward_transfer(a: Matrix) -> float | None:
    """BWT = 1/(T-1) sum_{j<T-1} (a[T-1][j] - a[j][j]) (Lopez-Paz and Ranzato 2017); negative = forgetting."""
    t = len(a)
    if t < 2:
        return None
    return sum(a[-1][j] - a[j][j] for j in range(t - 1)) / (t - 1)


def forward_transfer(a: Matrix, initial: Sequence[float] | None) -> float | None:
    """FWT = 1/(T-1) sum_{j>0} (a[j-1][j] - b[j]) (Lopez-Paz and Ranzato 2017), ``b`` the accuracy
    of the untrained learner (``initial``): how much learning earlier experiences helps on a later
    one before it is seen. None without ``b`` or with fewer than two rows."""
    t = len(a)
    if initial is None or t < 2 or len(a[0]) != t or any(a[j - 1][j] is None for j in range(1, t)):
        return None
    return sum(a[j - 1][j] - initial[j] for j in range(1, t)) / (t - 1)


def plasticity(a: Matrix) -> float | None:
    """P = (1/T) sum_j a[j][j]: accuracy on each experience right after learning it (how well new
    knowledge is taken in; Avalanche has no such metric). None for a single-row (joint) matrix."""
    if len(a) != len(a[0]):
        return None
    return sum(a[j][j] for j in range(len(a))) / len(a)


def summarize(a: Matrix, initial: Sequence[float] | None = None) -> dict[str, float | None]:
    """The summaries of a (possibly single-row) accuracy matrix; ``initial`` is the accuracy of the
    untrained learner on each experience (for forward transfer)."""
    return {
        "final_average_accuracy": average_accuracy(a),
        "average_forgetting": average_forgetting(a),
        "bwt": backward_transfer(a),
        "forward_transfer": forward_transfer(a, initial),
        "plasticity": plasticity(a),
    }
