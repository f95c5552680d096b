"""Avalanche 0.6 plugins that need a feature layer, a linear classifier or the training loss, with
ffcl's learners (docs/avalanche_script.md, "Compatibility with Avalanche 0.6 plugins"): each
plugin x learner either trains and evaluates, or is refused with a one-line ConfigError; and the
``mas`` and ``lfl`` plugins of the SFFA paper's protocol."""

from __future__ import annotations

import math

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import (
    BiCPlugin,
    CoPEPlugin,
    CWRStarPlugin,
    EvaluationPlugin,
    FeatureDistillationPlugin,
    LFLPlugin,
    MASPlugin,
)

from ffcl.config import ConfigError, StrategyConfig
from ffcl.data import load_dataset, make_stream
from ffcl.strategies import PLUGINS, build_strategy

LEARNERS = ("mlp", "sffa", "df", "slda")
LEARNER_ARGS = {"sffa": {"k": 4}, "df": {"n_negatives": 2}}

PLUGIN_MAKERS = {  # CWR* is built on the model, so after the strategy (None: appended once it exists)
    "lfl": lambda: LFLPlugin(lambda_e=1e-4),
    "mas": lambda: MASPlugin(lambda_reg=1.0, alpha=0.5),
    "bic": lambda: BiCPlugin(mem_size=60),
    "feature_distillation": lambda: FeatureDistillationPlugin(),
    "cope": lambda: CoPEPlugin(mem_size=60, n_classes=10, p_size=10),
    "cwr_star": None,
}
WORKS = {("lfl", "mlp"), ("mas", "mlp"), ("mas", "sffa"), ("mas", "df"), ("cope", "mlp"), ("cwr_star", "mlp")}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def stream(digits):
    return make_stream(digits, 2)


def config(learner: str, **kwargs) -> StrategyConfig:
    return StrategyConfig(**{"learner": learner, "learner_args": LEARNER_ARGS.get(learner, {}), "hidden": [16],
                             "epochs": 1, "batch_size": 32, "lr": 1e-2, **kwargs})


def build(cfg: StrategyConfig, stream, plugins=()):
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    return build_strategy(cfg, input_shape=stream.input_shape, num_classes=stream.num_classes, evaluator=evaluator,
                          extra_plugins=plugins)


def train_and_eval(strategy, stream, every: bool = True) -> list[float]:
    """Train on every experience; the test-stream accuracy after each (``every``) or after the last."""
    def accuracy() -> float:
        results = strategy.eval(stream.test_stream)
        return next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))

    accs = []
    for exp in stream.train_stream:  # an online stream's mini-experiences are generated: no len()
        strategy.train(exp)
        if every:
            accs.append(accuracy())
    return accs if every else [accuracy()]


def assert_one_line(excinfo, plugin_class: type) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg.startswith(plugin_class.__name__), msg


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("plugin", list(PLUGIN_MAKERS))
def test_plugin_works_or_is_refused_in_one_line(digits, stream, plugin, learner):
    torch.manual_seed(0)
    make = PLUGIN_MAKERS[plugin]
    if plugin == "cope" and learner == "mlp":  # CoPE learns online: one minibatch per (mini-)experience
        stream = make_stream(digits, 2, online=True, online_experience_size=10)
    cfg = config(learner, batch_size=10) if plugin == "cope" else config(learner)
    if (plugin, learner) in WORKS:
        strategy = build(cfg, stream, [make()] if make else [])
        if make is None:
            strategy.plugins.insert(0, CWRStarPlugin(strategy.model))  # before Avalanche's clock, which must come last
        accs = train_and_eval(strategy, stream, every=plugin != "cope")
        assert all(math.isfinite(a) and 0.0 <= a <= 1.0 for a in accs), accs
        assert max(accs) > 0.2, accs  # chance over the 10 classes is 0.1 (measured: 0.32 to 0.49 over seeds 0-3)
        return
    with pytest.raises(ConfigError) as excinfo:
        if make is None:
            strategy = build(cfg, stream)
            strategy.plugins.insert(0, CWRStarPlugin(strategy.model))
            strategy.train(stream.train_stream[0])
        else:
            build(cfg, stream, [make()])
    assert_one_line(excinfo, type(make()) if make else CWRStarPlugin)


@pytest.mark.parametrize("learner, plugin", [("sffa", lambda: LFLPlugin(1e-4)), ("mlp", lambda: BiCPlugin(mem_size=60)),
                                             ("slda", lambda: CoPEPlugin(p_size=10))])
def test_a_plugin_appended_after_building_is_refused_before_training(stream, learner, plugin):
    strategy = build(config(learner), stream)
    strategy.plugins.insert(0, plugin())
    with pytest.raises(ConfigError) as excinfo:
        strategy.train(stream.train_stream[0])
    assert_one_line(excinfo, type(strategy.plugins[0]))


def test_cope_needs_the_output_size_as_its_prototype_size(stream):
    with pytest.raises(ConfigError, match="p_size must be 10, not 100"):
        build(config("mlp"), stream, [CoPEPlugin(p_size=100)])


# --------------------------------------------------------------------------- the registered mas and lfl


def test_mas_and_lfl_are_registered_with_the_papers_arguments(stream):
    strategy = build(config("mlp", plugins={"mas": {}, "lfl": {}}), stream)
    (mas,) = [p for p in strategy.plugins if isinstance(p, MASPlugin)]
    (lfl,) = [p for p in strategy.plugins if isinstance(p, LFLPlugin)]
    assert (mas._lambda, mas.alpha, lfl.lambda_e) == (1.0, 0.5, 1e-4)
    strategy = build(config("mlp", plugins={"mas": {"lambda_reg": 2.0, "alpha": 0.1}, "lfl": {"lambda_e": 0.5}}), stream)
    (mas,) = [p for p in strategy.plugins if isinstance(p, MASPlugin)]
    (lfl,) = [p for p in strategy.plugins if isinstance(p, LFLPlugin)]
    assert (mas._lambda, mas.alpha, lfl.lambda_e) == (2.0, 0.1, 0.5)
    assert PLUGINS["mas"].__doc__ and "Aljundi" in PLUGINS["mas"].__doc__ and "Jung" in PLUGINS["lfl"].__doc__
    with pytest.raises(ConfigError) as excinfo:
        build(config("sffa", plugins={"lfl": {}}), stream)
    assert_one_line(excinfo, type(lfl))


def test_mas_on_an_ff_learner_weighs_its_blocks(stream):
    torch.manual_seed(0)
    strategy = build(config("sffa", plugins={"mas": {}}), stream)
    accs = train_and_eval(strategy, stream)
    (mas,) = [p for p in strategy.plugins if isinstance(p, MASPlugin)]
    importance = {name: p.data for name, p in mas.importance.items()}
    assert all(torch.isfinite(v).all() for v in importance.values())
    assert importance["blocks.0.inp"].sum() > 0  # the class scores' norm depends on the blocks' weights
    assert accs[0] > 0.3


@pytest.mark.parametrize("kind, frozen", [("domain_incremental", True), ("class_incremental", False)])
def test_lfl_freezes_the_classifier_through_experiences_that_bring_no_new_class(digits, kind, frozen):
    """Avalanche's LFL on an IncrementalClassifier (the SFFA paper's protocol): the classifier is
    frozen after each experience and rebuilt, trainable, when new classes arrive."""
    stream = make_stream(digits, 2, kind=kind)
    torch.manual_seed(0)
    strategy = build(config("mlp", plugins={"lfl": {}}), stream)
    strategy.train(stream.train_stream[0])
    assert not strategy.model.classifier.weight.requires_grad
    before = strategy.model.classifier.weight.detach().clone()
    strategy.train(stream.train_stream[1])
    assert torch.equal(strategy.model.classifier.weight, before) == frozen
    assert strategy.model.features[1].weight.requires_grad  # the features always learn (under the LFL penalty)


# --------------------------------------------------------------------------- get_features


def test_get_features_of_the_networks(stream):
    x = torch.rand(6, *stream.input_shape)
    mlp = build(config("mlp", hidden=[16, 8]), stream).model
    assert torch.equal(mlp.get_features(x), mlp.features(x)) and mlp.get_features(x).shape == (6, 8)
    ff = build(config("sffa", hidden=[16, 12], learner_args={"k": 3}), stream).model
    assert ff.get_features(x).shape == (6, 12)  # no class seen yet: every class a candidate
    ff.activate(torch.tensor([1, 4, 7]))
    with torch.no_grad():
        best = ff(x).argmax(1)
        assert set(best.tolist()) <= {1, 4, 7}
        assert torch.equal(ff.get_features(x), ff.activities(x, best[:, None])[-1][:, 0])
    feats = ff.get_features(x)
    assert feats.requires_grad  # the last block's parameters get the gradient of a penalty on them
    feats.sum().backward()
    assert ff.blocks[-1].inp.grad is not None and ff.blocks[0].inp.grad is None
    conv = build(config("sffa", net="vgg", hidden=[4, 4], learner_args={}), stream).model  # k is an MLP option
    assert conv.get_features(x).shape[0] == 6 and conv.get_features(x).dim() == 2
