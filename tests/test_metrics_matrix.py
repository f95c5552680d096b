"""Tests for ffcl.metrics.matrix on hand-made accuracy matrices (expected values worked out by hand)."""

from __future__ import annotations

import pytest

from ffcl.metrics import average_accuracy, average_forgetting, backward_transfer, plasticity, summarize

# a[i][j]: accuracy on experience j after training experience i.
TWO = [
    [1.0, 0.0],
    [0.5, 1.0],
]
# A_T = (0.3 + 0.5 + 0.7) / 3 = 0.5
# F   = ((0.9 - 0.3) + (0.8 - 0.5)) / 2 = 0.45   (the max of earlier rows is the diagonal here)
# BWT = ((0.3 - 0.9) + (0.5 - 0.8)) / 2 = -0.45
THREE = [
    [0.9, 0.0, 0.0],
    [0.6, 0.8, 0.0],
    [0.3, 0.5, 0.7],
]
# The best earlier accuracy is not the diagonal: exp 0 peaks after step 1 (0.9 > 0.5), exp 1 after
# step 2 (0.8 > 0.6); a[0][1] = 0.95 lies above the diagonal (before exp 1 was trained) and must be ignored.
# A_T = (0.4 + 0.7 + 0.6 + 0.9) / 4 = 0.65
# F   = ((0.9 - 0.4) + (0.8 - 0.7) + (0.85 - 0.6)) / 3 = 0.85 / 3
# BWT = ((0.4 - 0.5) + (0.7 - 0.6) + (0.6 - 0.85)) / 3 = -0.25 / 3
FOUR = [
    [0.50, 0.95, 0.00, 0.00],
    [0.90, 0.60, 0.10, 0.00],
    [0.70, 0.80, 0.85, 0.30],
    [0.40, 0.70, 0.60, 0.90],
]
# Accuracy on an old experience can rise later (positive transfer): forgetting and BWT change sign.
# A_T = (0.8 + 0.9) / 2 = 0.85, F = 0.6 - 0.8 = -0.2, BWT = 0.8 - 0.6 = 0.2
IMPROVES = [
    [0.6, 0.1],
    [0.8, 0.9],
]


@pytest.mark.parametrize(
    "matrix, acc, forgetting, bwt",
    [
        (TWO, 0.75, 0.5, -0.5),
        (THREE, 0.5, 0.45, -0.45),
        (FOUR, 0.65, 0.85 / 3, -0.25 / 3),
        (IMPROVES, 0.85, -0.2, 0.2),
    ],
)
def test_summaries(matrix, acc, forgetting, bwt):
    assert average_accuracy(matrix) == pytest.approx(acc)
    assert average_forgetting(matrix) == pytest.approx(forgetting)
    assert backward_transfer(matrix) == pytest.approx(bwt)
    assert summarize(matrix) == pytest.approx(
        {"final_average_accuracy": acc, "average_forgetting": forgetting, "bwt": bwt, "forward_transfer": None,
         "plasticity": plasticity(matrix)}
    )


def test_forgetting_uses_the_best_earlier_row_not_the_diagonal():
    # a diagonal-only forgetting would give ((0.5-0.4) + (0.6-0.7) + (0.85-0.6)) / 3 = 0.25 / 3
    assert average_forgetting(FOUR) != pytest.approx(0.25 / 3)
    # an upper-triangle entry (a[0][1] = 0.95) would give ((0.9-0.4) + (0.95-0.7) + (0.85-0.6)) / 3 = 1.0 / 3
    assert average_forgetting(FOUR) != pytest.approx(1.0 / 3)


def test_last_row_only_matters_for_accuracy():
    changed = [row[:] for row in THREE]
    changed[0] = [0.0, 1.0, 1.0]
    assert average_accuracy(changed) == pytest.approx(average_accuracy(THREE))


@pytest.mark.parametrize("matrix", [[[0.25, 0.5, 1.0]], [[0.7]]])
def test_single_row(matrix):
    expected = sum(matrix[0]) / len(matrix[0])
    assert average_accuracy(matrix) == pytest.approx(expected)
    assert average_forgetting(matrix) is None
    assert backward_transfer(matrix) is None
    assert summarize(matrix) == {"final_average_accuracy": pytest.approx(expected), "average_forgetting": None, "bwt": None,
                                 "forward_transfer": None, "plasticity": plasticity(matrix)}


def test_no_forgetting():
    perfect = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    assert summarize(perfect) == {"final_average_accuracy": 1.0, "average_forgetting": 0.0, "bwt": 0.0, "forward_transfer": None,
                                "plasticity": 1.0}


def test_tuples_are_accepted():
    as_tuples = tuple(tuple(row) for row in THREE)
    assert summarize(as_tuples) == pytest.approx(summarize(THREE))


def test_plasticity_is_the_mean_diagonal():
    from ffcl.metrics import plasticity

    a = [[0.9, 0.0, 0.0], [0.5, 0.8, 0.0], [0.4, 0.6, 0.7]]
    assert plasticity(a) == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert plasticity([[0.9, 0.8, 0.7]]) is None  # joint: one row, no diagonal
    assert plasticity([[0.7]]) == pytest.approx(0.7)


def test_forward_transfer():
    from ffcl.metrics import forward_transfer

    a = [[0.9, 0.3, 0.2], [0.8, 0.9, 0.5], [0.7, 0.8, 0.9]]
    b = [0.1, 0.1, 0.2]
    # (a[0][1] - b[1] + a[1][2] - b[2]) / 2 = (0.2 + 0.3) / 2
    assert forward_transfer(a, b) == pytest.approx(0.25)
    assert forward_transfer(a, None) is None and forward_transfer([[1.0]], [0.0]) is None
    assert summarize(a, b)["forward_transfer"] == pytest.approx(0.25)


def test_block_activity_of_an_sffa_network():
    import torch

    from ffcl.metrics import block_activity
    from ffcl.nn.ff import FFNet
    from ffcl.objectives import SFFA

    net = FFNet((1, 8, 8), [40, 40], 10, SFFA(10.0), split=True, k=3)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    stats = block_activity(net, x, y)
    assert len(stats) == 2
    for s in stats:  # k-WTA keeps at most 3 of 20 units per half: at least 34 of 40 are zero
        assert s["sparsity"] >= 34 / 40 - 1e-6
        assert 0 < s["usage"] <= 1
    dense = block_activity(FFNet((1, 8, 8), [40], 10, SFFA(10.0), split=True), x, y)[0]
    assert dense["sparsity"] < stats[0]["sparsity"]


def test_block_activity_measures_at_most_max_images_spread_over_the_seen_experiences(monkeypatch):
    from types import SimpleNamespace

    import torch

    from ffcl.metrics import activity
    from ffcl.nn.ff import FFNet
    from ffcl.objectives import SFFA

    tests = [(torch.rand(10, 1, 8, 8), torch.full((10,), j)) for j in range(6)]
    measured = []
    monkeypatch.setattr(activity, "block_activity", lambda model, x, y: measured.append(y.tolist()) or [])
    metric = activity.BlockActivity(tests, max_images=12)
    net = FFNet((1, 8, 8), [40], 10, SFFA(10.0), split=True, k=3)
    for seen in (1, 2, 3, 6):
        strategy = SimpleNamespace(model=net, device="cpu", experience=SimpleNamespace(current_experience=seen - 1),
                                   clock=SimpleNamespace(train_iterations=0))
        metric.after_training_exp(strategy)
    # 1 seen: all 10 images; 2: 6 each; 3: 4 each; 6: 2 each (never more than 12 in all)
    assert measured == [[0] * 10, [0] * 6 + [1] * 6, [0] * 4 + [1] * 4 + [2] * 4, [j for j in range(6) for _ in range(2)]]
