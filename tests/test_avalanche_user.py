"""ffcl's metrics inside an Avalanche user's own script (issue 14, item 3): other benchmark
generators, partial evaluations and online mini-experiences."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.scenarios.online import split_online_stream
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.logging import BaseLogger
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import TensorDataset

from ffcl.config import load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.metrics import MatrixSummary, average_forgetting, backward_transfer
from ffcl.strategies import build_strategy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _slda(evaluator):
    return build_strategy(load_strategy("slda"), input_shape=(1, 8, 8), num_classes=10, evaluator=evaluator)


def _direct_row(strategy, test_stream) -> list[float]:
    """Accuracy per test experience, computed from the model itself (in eval mode, as Avalanche
    evaluates: batch norm on its running statistics)."""
    strategy.model.eval()
    row = []
    for exp in test_stream:
        x = torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))])
        y = torch.tensor([int(exp.dataset[i][1]) for i in range(len(exp.dataset))])
        with torch.no_grad():
            row.append((strategy.model(x).argmax(1) == y).float().mean().item())
    return row


def test_matrix_summary_on_nc_benchmark_with_partial_evaluations(digits):
    """nc_benchmark's metric names carry /Task000/, and evaluating test_stream[:i+1] after each
    experience is the common pattern: forgetting and BWT must still be computed, and right."""
    bench = nc_benchmark(TensorDataset(digits.x_train, digits.y_train), TensorDataset(digits.x_test, digits.y_test),
                         n_experiences=5, task_labels=False, fixed_class_order=[3, 8, 1, 6, 0, 9, 2, 7, 4, 5])
    summary = MatrixSummary(5)
    strategy = _slda(EvaluationPlugin(accuracy_metrics(experience=True), summary, loggers=[]))
    rows = []
    for i, exp in enumerate(bench.train_stream):
        strategy.train(exp)
        results = strategy.eval(bench.test_stream[: i + 1])
        rows.append(_direct_row(strategy, bench.test_stream[: i + 1]))
    assert len(summary.rows) == 5
    for got, want in zip(summary.rows, rows):
        assert got[: len(want)] == pytest.approx(want) and all(v is None for v in got[len(want):])
    full = [r + [None] * (5 - len(r)) for r in rows]
    assert results["Summary/average_forgetting"] == pytest.approx(average_forgetting(full))
    assert results["Summary/bwt"] == pytest.approx(backward_transfer(full))
    assert results["Summary/final_average_accuracy"] == pytest.approx(sum(rows[-1]) / 5)


def test_avalanches_forgetting_and_bwt_in_a_users_evaluator_agree_with_the_matrix(digits):
    """ffcl's evaluator derives forgetting and BWT from the accuracy matrix alone; a user who adds
    Avalanche's own StreamForgetting/StreamBWT reads the same figures (Avalanche measures
    forgetting from the accuracy right after training, a[j][j] - a[T-1][j]: that is -BWT)."""
    from avalanche.evaluation.metrics import bwt_metrics, forgetting_metrics

    stream = make_stream(digits, 5)
    summary = MatrixSummary(5)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), forgetting_metrics(stream=True),
                                 bwt_metrics(stream=True), summary, loggers=[])
    cfg = load_strategy("naive")
    cfg.epochs = 4
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, evaluator=evaluator)
    torch.manual_seed(0)
    for exp in stream.train_stream:
        strategy.train(exp)
        results = strategy.eval(stream.test_stream)
    assert backward_transfer(summary.rows) < -0.1  # naive forgets: the comparison is not between zeros
    assert results["StreamBWT/eval_phase/test_stream"] == pytest.approx(backward_transfer(summary.rows), abs=1e-6)
    assert results["StreamForgetting/eval_phase/test_stream"] == pytest.approx(-backward_transfer(summary.rows), abs=1e-6)


def test_matrix_summary_without_per_experience_accuracy_in_the_evaluator(digits):
    stream = make_stream(digits, 2)
    summary = MatrixSummary(2)
    strategy = _slda(EvaluationPlugin(summary, loggers=[]))
    for exp in stream.train_stream:
        strategy.train(exp)
        strategy.eval(stream.test_stream)
    assert len(summary.rows) == 2 and summary.rows[-1] == pytest.approx(_direct_row(strategy, stream.test_stream))


@pytest.mark.parametrize("size", [60, 50])  # 60 divides the experiences' 120 samples: Avalanche never marks the last
def test_matrix_summary_counts_online_mini_experiences_once(size):
    from ffcl.data.datasets import synthetic

    stream = make_stream(synthetic(n_classes=4, n_train_per_class=60, n_test_per_class=10), 2)
    summary = MatrixSummary(2)
    strategy = _slda(EvaluationPlugin(accuracy_metrics(experience=True), summary, loggers=[]))
    for exp in stream.train_stream:
        for sub in split_online_stream([exp], experience_size=size, shuffle=False):
            strategy.train(sub)
        strategy.eval(stream.test_stream)
    assert len(summary.rows) == 2  # one row per experience, however it was cut
    assert summary.rows[-1] == pytest.approx(_direct_row(strategy, stream.test_stream))
    assert summary.rows[0][1] == 0.0 and summary.rows[1][1] > 0.9


def test_build_strategy_takes_an_optimizer_and_eval_every_for_early_stopping(digits):
    """Issue 14, item 5: without eval_every, EarlyStoppingPlugin read stale metrics and restored
    the start-of-experience model, so new classes were never learnt."""
    from avalanche.training.plugins import EarlyStoppingPlugin

    torch.manual_seed(0)
    stream = make_stream(digits, 2)
    cfg = load_strategy("sffa")
    cfg.hidden, cfg.epochs = [32, 32], 4
    strategy = build_strategy(
        cfg, input_shape=stream.input_shape, num_classes=10,
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[]),
        extra_plugins=[EarlyStoppingPlugin(patience=2, val_stream_name="test_stream")],
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3), eval_every=1,
    )
    assert isinstance(strategy.optimizer, torch.optim.AdamW) and strategy.optimizer.param_groups[0]["lr"] == 3e-3
    assert strategy.eval_every == 1
    for i, exp in enumerate(stream.train_stream):  # monitored: accuracy on the experience being learnt
        strategy.train(exp, eval_streams=[stream.test_stream[i : i + 1]])
    last = _direct_row(strategy, stream.test_stream)
    assert last[1] > 0.5  # the second experience's classes were learnt


def test_anytime_accuracy_survives_avalanche_checkpointing(digits, tmp_path):
    """Issue 14, item 7: after Avalanche's save_checkpoint / maybe_load_checkpoint (a new process
    unpickles the same bytes), AnytimeAccuracy had lost its test data and stopped recording."""
    from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint

    from ffcl.experiment import sample_test_data
    from ffcl.metrics import AnytimeAccuracy

    stream = make_stream(digits, 2)

    def fresh():
        metric = AnytimeAccuracy(sample_test_data(stream, 100, 0), every=200)
        return metric, _slda(EvaluationPlugin(metric, loggers=[]))

    metric, strategy = fresh()
    strategy.train(stream.train_stream[0])
    save_checkpoint(strategy, str(tmp_path / "ckpt.pkl"))
    _, blank = fresh()
    restored, _ = maybe_load_checkpoint(blank, str(tmp_path / "ckpt.pkl"))
    anytime = next(m for m in restored.evaluator.metrics if isinstance(m, AnytimeAccuracy))
    before = len(anytime.curve)
    restored.train(stream.train_stream[1])
    assert before >= 1 and len(anytime.curve) > before  # still recording after the restore


def _unsupported_plugins():
    from avalanche.training.plugins import LwFPlugin, MIRPlugin, RARPlugin, ReplayPlugin, RWalkPlugin
    from avalanche.training.storage_policy import HerdingSelectionStrategy, ParametricBuffer

    return {
        "lwf": lambda model: LwFPlugin(),
        "rwalk": lambda model: RWalkPlugin(),
        "mir": lambda model: MIRPlugin(batch_size_mem=10, mem_size=50, subsample=20),
        "rar": lambda model: RARPlugin(batch_size_mem=10, mem_size=50),
        "herding": lambda model: ReplayPlugin(mem_size=50, storage_policy=ParametricBuffer(
            50, selection_strategy=HerdingSelectionStrategy(model, "blocks.0"))),
    }


@pytest.mark.parametrize("name", sorted(_unsupported_plugins()))
def test_unsupported_plugins_fail_clearly_at_construction_and_when_appended(digits, name):
    """Issue 14, item 4: these failed deep inside Avalanche, some only after training had started."""
    from ffcl.config import ConfigError

    stream = make_stream(digits, 2)
    cfg = load_strategy("sffa")
    cfg.hidden, cfg.learner_args["k"] = [20, 20], 3
    probe = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    plugin = _unsupported_plugins()[name](probe.model)
    with pytest.raises(ConfigError, match="With FF learners use replay"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, extra_plugins=[plugin])
    probe.plugins.append(plugin)  # appended after the build: refused before any training
    with pytest.raises(ConfigError, match=type(plugin).__name__):
        probe.train(stream.train_stream[0])


@pytest.mark.parametrize("recipe,update", [("sffa", "fused"), ("df", "fused"), ("ff", "blockwise"), ("sffa_alloc", "fused"),
                                           ("sff", "fused"), ("df_proto", "blockwise")])
def test_training_phase_accuracy_is_the_real_accuracy(digits, recipe, update):
    """Issue 14, item 2: the minibatch output Avalanche's training metrics read are the class
    scores of those images as the model gave them before the minibatch (no label of it leaks in)."""
    from avalanche.core import SupervisedPlugin
    from avalanche.evaluation.metrics import accuracy_metrics as acc

    class Check(SupervisedPlugin):
        agree: list[float] = []
        correct = seen = 0

        def before_training_iteration(self, strategy, **kw):  # the model as it stands before this minibatch
            with torch.no_grad():
                self.direct = strategy.model(strategy.mb_x).argmax(1)
            self.correct += int((self.direct == strategy.mb_y).sum())
            self.seen += len(self.direct)

        def after_forward(self, strategy, **kw):
            self.agree.append((strategy.mb_output.argmax(1) == self.direct).float().mean().item())

    cfg = load_strategy(recipe)
    cfg.hidden, cfg.epochs, cfg.learner_args = [64, 64], 1, {**cfg.learner_args, "update": update}
    cfg.plugins.pop("shift", None)  # df_proto's augmentation moves the images after this check has seen them
    check = Check()
    evaluator = EvaluationPlugin(acc(epoch=True), loggers=[])
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, evaluator=evaluator, extra_plugins=[check])
    stream = make_stream(digits, 2)
    strategy.train(stream.train_stream[0])
    last = evaluator.get_last_metrics()
    train_acc = next(v for k, v in last.items() if k.startswith("Top1_Acc_Epoch/train_phase"))
    assert min(check.agree) == 1.0
    assert train_acc == pytest.approx(check.correct / check.seen)  # the goodness over [true, negatives] gave 0.0-0.47


class Captured(BaseLogger):
    """A user's own Avalanche logger: the last value of every metric."""

    def __init__(self):
        super().__init__()
        self.values = {}

    def log_single_metric(self, name, value, x_plot):
        self.values[name] = value


@pytest.mark.parametrize("recipe", ["sffa", "replay_free", "replay", "df_proto_replay"])
def test_an_avalanche_users_script_end_to_end(digits, tmp_path, recipe):
    """The issue-14 scenario in one script: an Avalanche-built class-incremental stream with a
    non-natural class order, cut into online mini-experiences; the user's own EvaluationPlugin
    with Avalanche metrics and loggers (a TextLogger and their own logger); Avalanche's
    checkpointing half-way, restored into a fresh strategy (as a new process would). Every logged
    accuracy equals the one computed directly from the model."""
    from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
    from avalanche.checkpointing import maybe_load_checkpoint
    from avalanche.evaluation.metrics import forgetting_metrics
    from avalanche.logging import TextLogger

    from ffcl.experiment import write_checkpoint

    bench = class_incremental_benchmark(
        {"train": TensorDataset(digits.x_train, digits.y_train), "test": TensorDataset(digits.x_test, digits.y_test)},
        class_order=[6, 2, 9, 0, 4, 1, 8, 3, 7, 5], num_experiences=5,
    )

    def fresh(log):
        captured = Captured()
        cfg = load_strategy(recipe)
        cfg.hidden, cfg.epochs, cfg.batch_size = ([64, 64] if recipe == "sffa" else [64]), 1, 10  # online: one pass, batches of 10
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), forgetting_metrics(experience=True),
                                     loggers=[TextLogger(log), captured])
        return build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, evaluator=evaluator), captured

    torch.manual_seed(0)
    with open(tmp_path / "log.txt", "w") as log:
        strategy, captured = fresh(log)
        for i, exp in enumerate(bench.train_stream):
            if i == 2:  # checkpoint, then continue in a strategy restored from it
                write_checkpoint(strategy, tmp_path / "ckpt.pkl")  # Avalanche's save_checkpoint, with dill set to work
                blank, _ = fresh(log)
                strategy, start = maybe_load_checkpoint(blank, str(tmp_path / "ckpt.pkl"))
                captured = next(lg for lg in strategy.evaluator.loggers if isinstance(lg, Captured))  # restored with it
                assert start == strategy.clock.train_exp_counter > 0  # the mini-experiences trained before it
            for sub in split_online_stream([exp], experience_size=100, shuffle=True, seed=i, access_task_boundaries=True):
                strategy.train(sub)
            strategy.eval(bench.test_stream[: i + 1])
    row = _direct_row(strategy, bench.test_stream)
    for j, acc in enumerate(row):
        assert captured.values[f"Top1_Acc_Exp/eval_phase/test_stream/Exp{j:03d}"] == pytest.approx(acc)
    with torch.no_grad():
        pooled = (strategy.model(digits.x_test).argmax(1) == digits.y_test).float().mean().item()
    assert captured.values["Top1_Acc_Stream/eval_phase/test_stream"] == pytest.approx(pooled)
    strategy.evaluator.loggers[0].file.flush()  # the restored TextLogger reopened log.txt for appending
    assert f"Top1_Acc_Exp/eval_phase/test_stream/Exp004 = {row[4]:.4f}" in (tmp_path / "log.txt").read_text()
    # it learnt: sffa forgets without replay (about 13% here), replay keeps some (about 46%; df_proto_replay
    # on a one-stage conv net about 79%), replay_free forgets nothing
    assert sum(row) / 5 > {"sffa": 0.1, "replay": 0.3, "df_proto_replay": 0.5, "replay_free": 0.8}[recipe]
