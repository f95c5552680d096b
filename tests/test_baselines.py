"""Tests for the baseline learners and plugins (ffcl.strategies.baselines) and the factory that builds them."""

from __future__ import annotations

import warnings

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import DER, Cumulative, JointTraining
from avalanche.training.plugins import (
    AGEMPlugin,
    EvaluationPlugin,
    EWCPlugin,
    GDumbPlugin,
    GEMPlugin,
    LwFPlugin,
    ReplayPlugin,
    SynapticIntelligencePlugin,
)
from avalanche.training.storage_policy import ClassBalancedBuffer, ExperienceBalancedBuffer, ReservoirSamplingBuffer
from avalanche.training.templates import SupervisedTemplate

import ffcl.strategies.baselines  # noqa: F401  (registers the baselines)
from ffcl.config import ConfigError, StrategyConfig
from ffcl.data import load_dataset, make_stream
from ffcl.experiment import run_experiment
from ffcl.strategies import LEARNERS, PLUGINS, build_strategy

BASELINE = "ffcl.strategies.baselines"
# Only the learners and plugins this module registers: the FF learners have their own tests.
BASELINE_LEARNERS = sorted(n for n, f in LEARNERS.items() if f.__module__ == BASELINE)
BASELINE_PLUGINS = sorted(n for n, f in PLUGINS.items() if f.__module__ == BASELINE)

LEARNER_TYPES = {"mlp": SupervisedTemplate, "cumulative": Cumulative, "joint": JointTraining, "der": DER}
PLUGIN_TYPES = {
    "ewc": EWCPlugin,
    "si": SynapticIntelligencePlugin,
    "lwf": LwFPlugin,
    "replay": ReplayPlugin,
    "gem": GEMPlugin,
    "agem": AGEMPlugin,
    "gdumb": GDumbPlugin,
}
# Small memories keep the tests fast.
PLUGIN_ARGS = {
    "replay": {"mem_size": 100},
    "gem": {"patterns_per_experience": 32},
    "agem": {"patterns_per_experience": 32, "sample_size": 32},
    "gdumb": {"mem_size": 200},
}
LEARNER_ARGS = {"der": {"mem_size": 100}}

def small(**kwargs) -> StrategyConfig:
    return StrategyConfig(**{"hidden": [32], "epochs": 2, "batch_size": 32, "lr": 1e-2, **kwargs})


@pytest.fixture(scope="module")
def stream():
    return make_stream(load_dataset("digits"), 2)


def build(cfg: StrategyConfig, stream) -> SupervisedTemplate:
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    return build_strategy(cfg, input_shape=stream.input_shape, num_classes=stream.num_classes, evaluator=evaluator)


def train_and_eval(strategy: SupervisedTemplate, stream) -> list[list[float]]:
    """Train as run_experiment does (joint: the whole stream at once); the accuracy matrix rows."""
    def row() -> list[float]:
        results = strategy.eval(stream.test_stream)
        return [results[f"Top1_Acc_Exp/eval_phase/test_stream/Exp{j:03d}"] for j in range(stream.n_experiences)]

    if isinstance(strategy, JointTraining):
        strategy.train(stream.train_stream)
        return [row()]
    rows = []
    for exp in stream.train_stream:
        strategy.train(exp)
        rows.append(row())
    return rows


def check_rows(rows: list[list[float]], joint: bool) -> None:
    assert len(rows) == (1 if joint else 2) and all(len(r) == 2 for r in rows)
    assert all(0.0 <= a <= 1.0 for r in rows for a in r)
    if joint:
        assert min(rows[0]) > 0.5  # both halves learnt (chance is 0.1)
    else:
        assert rows[0][0] > 0.5  # the first experience is learnt (chance among its 5 classes is 0.2)
        assert rows[0][1] < 0.1  # the classes of experience 1 have not been seen yet
    assert max(rows[-1]) > 0.3  # something is learnt from the last experience or kept from the first


def test_baselines_are_registered():
    assert set(LEARNER_TYPES) <= set(BASELINE_LEARNERS)
    assert set(PLUGIN_TYPES) <= set(BASELINE_PLUGINS)


@pytest.mark.parametrize("name", [n for n in BASELINE_LEARNERS if n != "dgr"])  # dgr: 28x28 images, below
def test_every_learner_trains(stream, name):
    torch.manual_seed(0)
    strategy = build(small(learner=name, learner_args=LEARNER_ARGS.get(name, {})), stream)
    if name in LEARNER_TYPES:
        assert isinstance(strategy, LEARNER_TYPES[name])
    assert strategy.train_epochs == 2 and strategy.train_mb_size == 32
    check_rows(train_and_eval(strategy, stream), joint=isinstance(strategy, JointTraining))


@pytest.mark.parametrize("name", BASELINE_PLUGINS)
def test_every_plugin_trains(stream, name):
    torch.manual_seed(0)
    strategy = build(small(plugins={name: PLUGIN_ARGS.get(name, {})}), stream)
    if name in PLUGIN_TYPES:
        assert sum(isinstance(p, PLUGIN_TYPES[name]) for p in strategy.plugins) == 1
    check_rows(train_and_eval(strategy, stream), joint=False)


def test_plugins_compose_and_arguments_arrive(stream):
    strategy = build(
        small(plugins={"ewc": {"ewc_lambda": 5, "mode": "online", "decay_factor": 0.5}, "replay": {"mem_size": 64, "policy": "reservoir"}}),
        stream,
    )
    (ewc,) = [p for p in strategy.plugins if isinstance(p, EWCPlugin)]
    (replay,) = [p for p in strategy.plugins if isinstance(p, ReplayPlugin)]
    assert ewc.ewc_lambda == 5 and ewc.mode == "online" and ewc.decay_factor == 0.5
    assert replay.mem_size == 64 and isinstance(replay.storage_policy, ReservoirSamplingBuffer)
    assert replay.storage_policy.max_size == 64
    check_rows(train_and_eval(strategy, stream), joint=False)


@pytest.mark.parametrize(
    "policy, cls", [("reservoir", ReservoirSamplingBuffer), ("class_balanced", ClassBalancedBuffer),
                    ("experience_balanced", ExperienceBalancedBuffer)]
)
def test_replay_policies(stream, policy, cls):
    strategy = build(small(batch_size=16, plugins={"replay": {"policy": policy, "mem_size": 30}}), stream)
    (replay,) = [p for p in strategy.plugins if isinstance(p, ReplayPlugin)]
    assert isinstance(replay.storage_policy, cls) and replay.storage_policy.max_size == 30
    sizes = []

    class Record(SupervisedPlugin):
        def after_training_iteration(self, strategy, **kwargs):
            sizes.append(len(strategy.mb_y))

    strategy.plugins.append(Record())
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        strategy.train(stream.train_stream[0])
        assert len(replay.storage_policy.buffer) == 30  # the buffer is filled after the experience
        first = len(sizes)
        strategy.train(stream.train_stream[1])
    assert max(sizes[:first]) == 16  # nothing stored yet: the minibatch alone
    assert max(sizes[first:]) == 32  # then each minibatch joined by as many buffer samples (the default)
    # the update goes through post_adapt: no deprecation warning each experience, no global filter set
    assert not [w for w in caught if "deprecated" in str(w.message)] and warnings.filters == filters


def test_optimizer_and_sizes_come_from_the_recipe(stream):
    strategy = build(small(optimizer="sgd", lr=0.05, momentum=0.9, hidden=[12, 7], eval_batch_size=99), stream)
    assert isinstance(strategy.optimizer, torch.optim.SGD)
    assert strategy.optimizer.param_groups[0]["lr"] == 0.05 and strategy.optimizer.param_groups[0]["momentum"] == 0.9
    assert [m.out_features for m in strategy.model.modules() if isinstance(m, torch.nn.Linear)] == [12, 7, 10]
    assert strategy.eval_mb_size == 99
    assert isinstance(build(small(optimizer="adamw"), stream).optimizer, torch.optim.AdamW)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "cfg, needles",
    [
        (small(learner="nope"), ["unknown learner 'nope'", "mlp", "der"]),
        (small(plugins={"nope": {}}), ["unknown plugin 'nope'", "replay", "ewc"]),
        (small(plugins={"replay": {"size": 3}}), ["plugin 'replay' has no argument 'size'", "mem_size"]),
        (small(learner_args={"x": 1}), ["learner 'mlp' has no argument 'x'", "none"]),
        (small(learner="der", learner_args={"buffer": 1}), ["learner 'der' has no argument 'buffer'", "alpha"]),
        (small(plugins={"replay": {"mem_size": "big"}}), ["plugin 'replay'", "'mem_size'", "integer", "'big'"]),
        (small(plugins={"replay": {"mem_size": 1.5}}), ["'mem_size'", "integer"]),
        (small(plugins={"ewc": {"ewc_lambda": "x"}}), ["plugin 'ewc'", "'ewc_lambda'", "number"]),
        (small(plugins={"ewc": {"decay_factor": "x"}}), ["'decay_factor'"]),
        (small(learner="der", learner_args={"alpha": [1]}), ["learner 'der'", "'alpha'", "number"]),
        (small(learner="der", learner_args={"alpha": "x"}), ["'alpha'", "a number"]),
        (small(plugins={"replay": {"policy": "fifo"}}), ["'policy'", "reservoir", "class_balanced", "'fifo'"]),
        (small(plugins={"replay": {"policy": 3}}), ["'policy'", "string"]),
        (small(learner="sffa", learner_args={"boost": -1.0}), ["'boost'", ">= 0"]),
        (small(learner="df", learner_args={"peer_normalization": 0.1}), ["'peer_normalization'", "learner 'df'"]),
    ],
)
def test_bad_recipes(stream, cfg, needles):
    with pytest.raises(ConfigError) as excinfo:
        build(cfg, stream)
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_required_arguments_are_enforced(stream, monkeypatch):
    made = []

    def needs(ctx, size: int, scale: float = 1.0):
        made.append((size, scale))
        return ctx.mlp()

    monkeypatch.setitem(LEARNERS, "needs", needs)
    with pytest.raises(ConfigError, match=r"learner 'needs' needs argument\(s\): size"):
        build(small(learner="needs"), stream)
    assert build(small(learner="needs", learner_args={"size": 3, "scale": 2}), stream) is not None
    assert made == [(3, 2)]


# --------------------------------------------------------------------------- behaviour


def test_replay_beats_naive_on_split_digits(tmp_path, make_config):
    # split_digits: 5 experiences of 2 classes, 10 epochs each with batch 32
    budget = ["strategy.hidden=[64]", "scenario.epochs=10", "scenario.batch_size=32"]
    naive = run_experiment(make_config("split_digits", "naive", budget), tmp_path / "naive", quiet=True)
    replay = run_experiment(
        make_config("split_digits", "replay", [*budget, "strategy.plugins.replay.mem_size=300"]),
        tmp_path / "replay",
        quiet=True,
    )
    # naive fine-tuning forgets almost everything; replay keeps most of it (about 0.18 vs 0.85 here)
    assert naive["average_forgetting"] > 0.5
    assert replay["final_average_accuracy"] > naive["final_average_accuracy"] + 0.3
    assert replay["average_forgetting"] < naive["average_forgetting"] - 0.3


def test_dgr_trains_on_28x28_images_and_refuses_others(stream):
    """Avalanche's GenerativeReplay with its default generator, which only takes 1x28x28 images."""
    from avalanche.training import GenerativeReplay

    from ffcl.data.datasets import synthetic

    torch.manual_seed(0)
    data = synthetic(n_classes=4, n_train_per_class=40, n_test_per_class=10, shape=(1, 28, 28))
    small_stream = make_stream(data, 2)
    strategy = build(small(learner="dgr", epochs=1), small_stream)
    assert isinstance(strategy, GenerativeReplay)
    rows = train_and_eval(strategy, small_stream)
    assert rows[0][0] > 0.5 and rows[0][1] == 0.0 and max(rows[-1]) > 0.3
    with pytest.raises(ConfigError, match="1x28x28"):
        build(small(learner="dgr"), stream)


def test_si_measures_a_path_integral_on_the_cpu(stream):
    """Avalanche 0.6's SI snapshots the weights as views of the parameters on the CPU, so its path
    integral and its penalty's anchor never moved and SI equalled naive fine-tuning; ffcl's copies them."""
    strategy = build_strategy(small(plugins={"si": {"si_lambda": 1000.0, "eps": 0.1}}), input_shape=stream.input_shape,
                              num_classes=stream.num_classes)
    si = strategy.plugins[0]
    strategy.train(stream.train_stream[0])
    assert sum(float(t.data.abs().sum()) for t in si.syn_data["cum_trajectory"].values()) > 0
    after_first = {name: p.detach().flatten().clone() for name, p in strategy.model.named_parameters()}
    checks = []

    class Spy(SupervisedPlugin):
        def after_training_iteration(self, strategy, **kwargs):  # the penalty's anchor: the weights the experience began with
            checks.append(all(torch.equal(si.ewc_data[0][n].data, w) for n, w in after_first.items()))
            checks.append(not torch.equal(si.ewc_data[0]["classifier.weight"].data, strategy.model.classifier.weight.flatten()))

    strategy.plugins.insert(0, Spy())
    strategy.train(stream.train_stream[1])
    assert checks and all(checks)
