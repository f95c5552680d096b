"""Sparsity-based neuron allocation: ownership, freezing, the free pool, capacity, hybrids."""

from __future__ import annotations

import warnings

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from ffcl.allocation import NeuronAllocation, hybrid_images
from ffcl.config import StrategyConfig
from ffcl.data import load_dataset, make_stream
from ffcl.strategies import build_strategy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _alloc_strategy(data, *, hidden=(40, 40), max_classes=None, epochs=2, hybrid=1.0, freeze=True, replay=False):
    alloc = {"max_classes": max_classes} if max_classes else {}
    plugins = {"allocation": alloc if freeze else {**alloc, "freeze": False}}
    if replay:
        plugins["replay"] = {"mem_size": 100}
    cfg = StrategyConfig(
        learner="sffa", hidden=list(hidden), epochs=epochs, batch_size=32, lr=3e-3,
        learner_args={"k": 3, "hybrid_negatives": hybrid}, plugins=plugins,
    )
    s = build_strategy(cfg, input_shape=data.input_shape, num_classes=data.num_classes,
                       evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[]))
    plugin = next(p for p in s.plugins if isinstance(p, NeuronAllocation))
    return s, plugin


def _class_params(model, c):
    """Every weight that class c's neurons own: the columns of its units in every block."""
    out = []
    for block in model.blocks:
        cols = block.owner == c
        out += [p.detach()[..., cols].clone() for p in block.parameters()]
    return out


def test_old_classes_keep_their_weights_and_scores(digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    s, plugin = _alloc_strategy(digits)
    s.train(stream.train_stream[0])
    before = [_class_params(s.model, c) for c in (0, 1)]
    x = digits.x_test[:64]
    s.model.eval()
    with torch.no_grad():
        scores_before = s.model(x)[:, :2].clone()
    for exp in stream.train_stream[1:3]:
        s.train(exp)
    for c, params in zip((0, 1), before):
        for a, b in zip(params, _class_params(s.model, c)):
            assert torch.equal(a, b), f"class {c}'s neurons changed after later experiences"
    s.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(s.model(x)[:, :2], scores_before)  # the old classes' scores are exactly frozen
    assert s.model.frozen[:6].all() and not s.model.frozen[6:].any()


def test_unfrozen_allocation_keeps_owners_but_lets_old_classes_learn(digits):
    """``freeze = false`` (for use with replay): classes keep their own neurons, which go on learning."""
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    s, plugin = _alloc_strategy(digits, freeze=False, replay=True)
    s.train(stream.train_stream[0])
    owners = [b.owner.clone() for b in s.model.blocks]
    before = _class_params(s.model, 0)
    s.train(stream.train_stream[1])
    assert not s.model.frozen.any()
    for old, block in zip(owners, s.model.blocks):  # old owners kept, new classes took free neurons
        assert torch.equal(block.owner[old >= 0], old[old >= 0]) and (block.owner == 2).any()
    assert any(not torch.equal(a, b) for a, b in zip(before, _class_params(s.model, 0))), "class 0 never learnt from replay"


def test_free_pool_shrinks_as_classes_arrive(digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    s, plugin = _alloc_strategy(digits, hidden=(40,))
    free = []
    for exp in stream.train_stream[:3]:
        s.train(exp)
        state = plugin.state()[0]
        free.append(state["free_neurons"])
        assert set(state["neurons_per_class"].values()) == {plugin.block_size(40)}
    per_class = 2 * plugin.block_size(40)  # positive and negative neurons
    assert free == [40 - 2 * per_class, 40 - 4 * per_class, 40 - 6 * per_class]
    owners = s.model.blocks[0].owner
    for c in range(6):  # each class owns as many positive as negative neurons, disjoint from the others
        pos, neg = (owners[:20] == c).sum(), (owners[20:] == c).sum()
        assert pos == neg == plugin.block_size(40)


def test_running_out_of_capacity_warns_and_does_not_crash(digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    s, plugin = _alloc_strategy(digits, hidden=(20,), max_classes=4, epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for exp in stream.train_stream[:3]:
            s.train(exp)
    assert any("no free neurons left for class" in str(w.message) for w in caught)
    assert plugin.state()[0]["free_neurons"] == 20 - 4 * 2 * plugin.block_size(20)
    res = s.eval(stream.test_stream[:3])
    assert 0.0 <= res["Top1_Acc_Stream/eval_phase/test_stream"] <= 1.0


def test_allocation_beats_plain_sffa_without_stored_data(digits):
    """The point of allocation: far less forgetting than the same learner without it."""
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    results = {}
    for name, plugins in (("alloc", {"allocation": {}}), ("plain", {})):
        cfg = StrategyConfig(learner="sffa", hidden=[100, 100], epochs=4, batch_size=32, lr=3e-3,
                             learner_args={"k": 5, "hybrid_negatives": 1.0 if plugins else 0.0}, plugins=plugins)
        s = build_strategy(cfg, input_shape=digits.input_shape, num_classes=10,
                           evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))
        for exp in stream.train_stream:
            s.train(exp)
        results[name] = s.eval(stream.test_stream)["Top1_Acc_Stream/eval_phase/test_stream"]
    assert results["plain"] < 0.35
    assert results["alloc"] > results["plain"] + 0.25, results


def test_hybrid_images_mix_two_images():
    torch.manual_seed(0)
    x = torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)] * 4)
    h, _ = hybrid_images(x)
    assert h.shape == x.shape
    frac = h.flatten(1).mean(1)
    mixed = (frac > 0.2) & (frac < 0.8)  # a zero image blended with a one image
    assert mixed.any()
    assert ((h == 0) | (h == 1)).all()  # each pixel comes from one of the two images
    y = torch.tensor([0, 1] * 4)
    h, partner = hybrid_images(x, y)  # partners from the other class: every hybrid mixes a zero and a one image
    frac = h.flatten(1).mean(1)
    assert ((frac > 0.05) & (frac < 0.95)).all()
    assert (y[partner] != y).all()


@pytest.mark.parametrize("learner,hidden,match", [
    ("df", [20], "needs an SFFA network"), ("mlp", [20], "not a MLP"), ("sffa", [12], "widen strategy.hidden"),
])
def test_allocation_on_a_network_it_cannot_divide_fails_when_built(digits, learner, hidden, match):
    """Issue 14, item 15: at construction, with a line that says what to change, not mid-run."""
    from ffcl.config import ConfigError

    cfg = StrategyConfig(learner=learner, hidden=hidden, epochs=1, batch_size=32, plugins={"allocation": {}},
                         learner_args={"k": 3} if learner == "sffa" else {})
    with pytest.raises(ConfigError, match=match):
        build_strategy(cfg, input_shape=digits.input_shape, num_classes=10, evaluator=EvaluationPlugin(loggers=[]))


def test_cli_allocation_on_an_mlp_is_one_line_and_leaves_no_run_directory(tmp_path, capsys):
    from ffcl.cli import main

    out = tmp_path / "run"
    assert main(["run", "--scenario", "split_digits", "--strategy", "naive", "--set", "strategy.plugins.allocation={}",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs an SFFA network" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_classes_that_return_after_their_experience_get_a_warning(digits):
    from ffcl.data.streams import make_drift_stream

    torch.manual_seed(0)
    stream = make_drift_stream(digits, 2)  # every class in both experiences
    s, _ = _alloc_strategy(digits, hidden=(40,), epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s.train(stream.train_stream[0])
        assert not any("are frozen" in str(w.message) for w in caught)
        s.train(stream.train_stream[1])
    assert any("classes [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in str(w.message) and "class-incremental" in str(w.message)
               for w in caught)


@pytest.mark.parametrize("task_boundaries", [True, False])
def test_allocation_runs_on_online_mini_experiences(digits, task_boundaries):
    """Avalanche's OnlineCLExperience has no classes_in_this_experience (issue 14, item 1)."""
    from avalanche.benchmarks.scenarios.online import split_online_stream

    torch.manual_seed(0)
    stream = make_stream(digits, 2, online=True)
    online = split_online_stream(stream.train_stream, experience_size=200, shuffle=True, seed=0,
                                 access_task_boundaries=task_boundaries)
    strategy, plugin = _alloc_strategy(digits, epochs=1)
    for exp in online:
        strategy.train(exp)
    owned = {int(c) for c in plugin.model.blocks[0].owner.unique() if c >= 0}
    assert owned == set(range(10))  # every class got its neurons


def test_experience_classes_of_an_online_mini_experience(digits):
    from ffcl.data.streams import experience_classes

    stream = make_stream(digits, 2, online=True, online_experience_size=100)
    exp = next(iter(stream.train_stream))
    x, y = exp.dataset[0][:2]
    assert int(y) in experience_classes(exp) and set(experience_classes(exp)) <= set(range(5))
