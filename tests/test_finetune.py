"""Class-balanced fine-tuning on the replay buffer (ffcl.strategies.finetune)."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from ffcl.config import ConfigError, StrategyConfig
from ffcl.data import load_dataset, make_stream
from ffcl.strategies import build_strategy
from ffcl.strategies.finetune import BalancedFinetune


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _strategy(data, plugins, learner="mlp"):
    cfg = StrategyConfig(learner=learner, hidden=[64], epochs=5, batch_size=32, lr=2e-3, plugins=plugins)
    return build_strategy(cfg, input_shape=data.input_shape, num_classes=data.num_classes,
                          evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))


def _imbalance_and_accuracy(s, data):
    """Total-variation distance between predicted and true class frequencies, and accuracy."""
    s.model.eval()
    with torch.no_grad():
        pred = s.model(data.x_test.to(s.device)).argmax(1).cpu()
    freq = lambda y: torch.bincount(y, minlength=data.num_classes).float() / len(y)  # noqa: E731
    return 0.5 * (freq(pred) - freq(data.y_test)).abs().sum().item(), (pred == data.y_test).float().mean().item()


def test_finetuning_on_the_buffer_balances_predictions_and_restores_the_rate(digits):
    stream = make_stream(digits, 5)
    res = {}
    for name, extra in (("plain", {}), ("finetune", {"balanced_finetune": {"epochs": 5, "lr_scale": 0.5}})):
        torch.manual_seed(0)
        s = _strategy(digits, {"replay": {"mem_size": 100}, **extra})
        for exp in stream.train_stream:
            s.train(exp)
        assert [g["lr"] for g in s.optimizer.param_groups] == [2e-3] * len(s.optimizer.param_groups)
        res[name] = _imbalance_and_accuracy(s, digits)
    # replay sees some classes far more often than others; the balanced buffer evens that out
    assert res["finetune"][0] < res["plain"][0] and res["finetune"][1] > res["plain"][1], res


def test_finetuning_needs_replay_listed_before_it(digits):
    stream = make_stream(digits, 5)
    s = _strategy(digits, {"balanced_finetune": {}})
    with pytest.raises(ConfigError, match="after \\[plugins.replay\\]"):
        s.train(stream.train_stream[0])
    s = _strategy(digits, {"balanced_finetune": {}, "replay": {"mem_size": 50}})
    with pytest.raises(ConfigError, match="after \\[plugins.replay\\]"):
        s.train(stream.train_stream[0])


def test_finetuning_runs_the_ff_training_step_on_the_buffer(digits):
    """FF learners: the fine-tuning epochs go through the FF template's local training step."""
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    s = _strategy(digits, {"replay": {"mem_size": 60}, "balanced_finetune": {"epochs": 2}}, learner="sffa")
    plugin = next(p for p in s.plugins if isinstance(p, BalancedFinetune))
    seen = []
    s.plugins.append(type("Spy", (BalancedFinetune,), {
        "before_training_iteration": lambda self, st, **kw: seen.append((plugin.active, len(st.mb_y))),
        "after_training_exp": lambda self, st, **kw: None, "before_training": lambda self, st, **kw: None,
    })(lr=1.0))
    s.train(stream.train_stream[0])
    s.train(stream.train_stream[1])
    tuned = [n for active, n in seen if active]
    assert sum(tuned) == 2 * 60 + 2 * 60  # 2 epochs over the full 60-sample buffer after each experience
    with pytest.raises(ConfigError, match="epochs >= 1"):
        BalancedFinetune(lr=0.1, epochs=0)
