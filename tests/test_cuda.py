"""The CUDA code path (issue 16, item 4): whenever a GPU is present, every kind of learner trains
and evaluates on it, with its data resident there, and predicts like its CPU twin. On a machine
without CUDA (CI's) these tests do not apply."""

from __future__ import annotations

import pytest
import torch

from ffcl.config import load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.data.loaders import dataset_tensors
from ffcl.strategies import build_strategy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("recipe", ["sffa_alloc", "df", "ff", "replay", "ewc", "replay_free", "genclass", "slda"])
def test_learner_trains_on_the_gpu(recipe):
    digits = load_dataset("digits")
    stream = make_stream(digits, 2)
    cfg = load_strategy(recipe)
    cfg.hidden, cfg.epochs = ([64, 64] if cfg.learner != "dc_lda" else [64]), 1
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, device="cuda")
    for exp in stream.train_stream:
        strategy.train(exp)
        x, _, _ = dataset_tensors(exp.dataset, strategy.device)
        assert x.is_cuda
    assert all(p.is_cuda for p in strategy.model.parameters())
    results = strategy.eval(stream.test_stream)
    acc = [v for k, v in results.items() if k.startswith("Top1_Acc_Stream")]
    assert acc and 0.0 <= acc[0] <= 1.0
    with torch.no_grad():
        out = strategy.model(digits.x_test.cuda())
    assert out.is_cuda and out.shape == (len(digits.y_test), 10)


def test_stream_learner_on_the_gpu():
    from ffcl import StreamLearner

    d = load_dataset("digits")
    learner = StreamLearner("slda", device="cuda").partial_fit(d.x_train.numpy(), d.y_train.numpy())
    assert learner.strategy_.device.type == "cuda" and learner.score(d.x_test.numpy(), d.y_test.numpy()) > 0.8


@pytest.mark.parametrize("recipe", ["sffa_alloc", "df", "replay"])
def test_no_training_step_synchronises_on_the_gpu(recipe):
    """CUDA's own sync debugger, set to fail, over every training epoch (tests/test_host_sync.py
    checks the same ops on any device)."""
    from avalanche.core import SupervisedPlugin

    class FailOnSync(SupervisedPlugin):
        def before_training_epoch(self, strategy, **kwargs):
            torch.cuda.set_sync_debug_mode("error")

        def after_training_epoch(self, strategy, **kwargs):
            torch.cuda.set_sync_debug_mode("default")

    cfg = load_strategy(recipe)
    cfg.hidden, cfg.epochs = [64, 64], 1
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, device="cuda", extra_plugins=[FailOnSync()])
    try:
        for exp in make_stream(load_dataset("digits"), 5).train_stream[:3]:
            strategy.train(exp)
    finally:
        torch.cuda.set_sync_debug_mode("default")
