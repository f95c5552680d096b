"""Prequential (test-then-train) accuracy (issue 17, item 1)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ffcl.metrics import PrequentialAccuracy
from ffcl.metrics.prequential import CUMULATIVE, WINDOW


def _fake_strategy(n_samples: int, batch: int, epoch: int = 0):
    exp = SimpleNamespace(current_experience=0, dataset=[None] * n_samples)
    return SimpleNamespace(is_training=True, clock=SimpleNamespace(train_exp_epochs=epoch), train_mb_size=batch, experience=exp)


def _step(metric, strategy, predicted, truth):
    strategy.mb_y = torch.tensor(truth)
    strategy.mb_output = torch.nn.functional.one_hot(torch.tensor(predicted), 4).float()
    metric.after_forward(strategy)
    return metric.after_training_iteration(strategy)


def test_prequential_accuracy_by_hand():
    """Seven samples in minibatches of 3, 3, 1, predicted before training:
    right, wrong, right | right, wrong, wrong | right  -> cumulative 4/7, last 4 (r, w, w, r): 2/4."""
    metric = PrequentialAccuracy(window=4, every=3)
    s = _fake_strategy(7, 3)
    metric.before_training_exp(s)
    logged = _step(metric, s, [0, 1, 2], [0, 2, 2])
    assert metric.result() == pytest.approx(2 / 3) and metric.window_accuracy() == pytest.approx(2 / 3)
    assert {v.name: v.value for v in logged} == {CUMULATIVE: pytest.approx(2 / 3), WINDOW: pytest.approx(2 / 3)}
    _step(metric, s, [1, 0, 0], [1, 3, 3])
    assert metric.result() == pytest.approx(3 / 6) and metric.window_accuracy() == pytest.approx(2 / 4)
    # the last minibatch: one stream sample followed by two replayed ones, which are never counted
    _step(metric, s, [3, 0, 0], [3, 0, 0])
    assert metric.samples == 7 and metric.result() == pytest.approx(4 / 7) and metric.window_accuracy() == pytest.approx(2 / 4)
    assert [p["samples"] for p in metric.curve] == [3, 6]
    # a second epoch over the same data has seen it: nothing is scored
    s.clock.train_exp_epochs = 1
    _step(metric, s, [0, 0, 0], [1, 1, 1])
    assert metric.samples == 7


def test_prequential_counts_only_the_streams_samples_with_replay(make_config, run_dir):
    """Through a run: every training sample scored once, replayed ones never; the logged values
    match the curve; metrics.json holds it."""
    from ffcl.experiment import run_experiment

    cfg = make_config("online_split_digits", "replay", ["scenario.anytime_every=100", "scenario.prequential_window=200"])
    m = run_experiment(cfg, run_dir, quiet=True)
    p = m["prequential"]
    from ffcl.data import load_dataset

    n_train = len(load_dataset("digits").y_train)
    samples = [e["samples"] for e in p["curve"]]
    assert len(samples) == n_train // 100 and all(100 * (i + 1) <= s < 100 * (i + 1) + 10 for i, s in enumerate(samples))
    assert p["samples"] == n_train and p["window"] == 200 and 0 < p["cumulative"] <= 1
    log = (run_dir / "log.txt").read_text()
    assert CUMULATIVE in log and WINDOW in log


def test_prequential_matches_the_models_own_predictions(digits_stream):
    """Each minibatch is scored by the model as it stands before that minibatch's update."""
    from avalanche.core import SupervisedPlugin
    from avalanche.training.plugins import EvaluationPlugin

    from ffcl.config import load_strategy
    from ffcl.strategies import build_strategy

    class Direct(SupervisedPlugin):
        correct = seen = 0

        def before_training_iteration(self, strategy, **kw):
            strategy.model.eval()
            with torch.no_grad():
                pred = strategy.model(strategy.mb_x).argmax(1)
            strategy.model.train()
            self.correct += int((pred == strategy.mb_y).sum())
            self.seen += len(pred)

    for recipe in ("sffa", "df", "naive", "slda", "replay_free"):
        metric, direct = PrequentialAccuracy(), Direct()
        cfg = load_strategy(recipe)
        cfg.hidden, cfg.epochs, cfg.batch_size = [32], 1, 16
        s = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, evaluator=EvaluationPlugin(metric, loggers=[]),
                           extra_plugins=[direct])
        for exp in digits_stream.train_stream[:2]:
            s.train(exp)
        assert metric.samples == direct.seen and metric.correct == direct.correct, recipe


@pytest.fixture(scope="module")
def digits_stream():
    from ffcl.data import load_dataset, make_stream

    return make_stream(load_dataset("digits"), 5)


def test_report_plots_prequential_accuracy(make_config, tmp_path):
    from ffcl.experiment import run_experiment
    from ffcl.report import write_report

    run = tmp_path / "run"
    run_experiment(make_config("online_split_digits", "naive"), run, quiet=True)
    path = write_report([run], tmp_path / "report")
    text = path.read_text()
    assert "prequential_accuracy.png" in text and (tmp_path / "report" / "prequential_accuracy.png").is_file()
    m = json.loads((run / "metrics.json").read_text())
    assert f"{100 * m['prequential']['cumulative']:.2f}" in text


def test_anytime_and_prequential_count_every_stream_sample_of_large_minibatches(make_config, run_dir):
    """Statistics learners take their minibatches 4096 samples at a time; both metrics must count
    every stream sample of them (anytime counted only the recipe's batch size of each)."""
    from ffcl.data import load_dataset
    from ffcl.experiment import run_experiment

    cfg = make_config("online_split_digits", "slda", ["scenario.anytime_every=100"])
    m = run_experiment(cfg, run_dir, quiet=True)
    n_train = len(load_dataset("digits").y_train)
    assert m["anytime"][-1]["samples"] == n_train and m["prequential"]["samples"] == n_train
