"""FF learners: objectives learn, gradients stay local, update modes agree, plugins compose."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from ffcl.config import StrategyConfig
from ffcl.data import load_dataset, make_stream
from ffcl.nn.ff import FFBlock, FFNet, rms_normalize, topk_last
from ffcl.objectives import OBJECTIVES, make_objective
from ffcl.strategies import build_strategy
from ffcl.strategies.ff_template import FFTemplate, sample_negatives

FF_LEARNERS = ["ff", "sffa", "df"]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _strategy(learner: str, data, *, hidden=(64, 64), epochs=1, plugins=None, **args) -> FFTemplate:
    cfg = StrategyConfig(
        learner=learner, hidden=list(hidden), epochs=epochs, batch_size=32, lr=3e-3,
        learner_args=args, plugins=plugins or {},
    )
    return build_strategy(
        cfg, input_shape=data.input_shape, num_classes=data.num_classes,
        evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
    )


def _accuracy(strategy: FFTemplate, data) -> float:
    strategy.model.eval()
    with torch.no_grad():
        pred = strategy.model(data.x_test).argmax(1)
    return (pred == data.y_test).float().mean().item()


@pytest.mark.parametrize("learner", FF_LEARNERS)
def test_each_learner_learns_digits(learner, digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 1)
    # FF's first layer is the one that learns within seconds (deeper ones start slowly, see docs/ff.md)
    args = {"sffa": {"k": 8}, "ff": {"score_first_layer": True}}.get(learner, {})
    s = _strategy(learner, digits, epochs=6, hidden=(64,) if learner == "ff" else (64, 64), **args)
    losses = []

    class Record:
        def __getattr__(self, name):
            return lambda *a, **k: None

        def after_training_iteration(self, strategy, **kw):
            losses.append(strategy.loss.item())

    s.plugins.append(Record())
    s.train(stream.train_stream[0])
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first, f"{learner}: loss did not fall ({first:.3f} -> {last:.3f})"
    acc = _accuracy(s, digits)
    assert acc > 0.6, f"{learner}: accuracy {acc:.2f} is not well above chance (0.10)"


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_prefers_positive(name):
    """Raising the positive's goodness relative to the negatives lowers every objective's loss."""
    torch.manual_seed(0)
    obj = make_objective(name)
    h = torch.rand(8, 3, 10)
    better = h.clone()
    # more activity in the positive (for SFFA: in its positive half); for the centroid distance,
    # whose h is a displacement from the class's centroid, the positive moves closer instead
    better[:, 0, :5] *= 0.5 if name == "centroid" else 2
    assert obj.loss(better) < obj.loss(h)


@pytest.mark.parametrize("objective,kw", [("hinton", {}), ("sffa", {"split": True, "k": 4})])  # dense and sparse pass-on
def test_no_gradient_crosses_a_block_boundary(digits, objective, kw):
    torch.manual_seed(0)
    net = FFNet(digits.input_shape, [32, 32, 32], 10, make_objective(objective), residual=True, **kw)
    x, labels = digits.x_train[:16], torch.randint(0, 10, (16, 2))
    acts = net.activities(x, labels)
    acts[2].pow(2).sum().backward()  # the last block's goodness only
    for i, block in enumerate(net.blocks):
        grads = [p.grad for p in block.parameters()]
        if i < 2:
            assert all(g is None or g.abs().sum() == 0 for g in grads), f"gradient reached block {i}"
        else:
            assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("learner,args", [
    ("sffa", {"k": 8}), ("sffa", {"k": 8, "standardize_input": True}), ("df", {"collaboration": True}),
    ("ff", {}),
])
def test_fused_and_blockwise_updates_give_the_same_gradients(learner, args, digits):
    grads = {}
    for update in ("fused", "blockwise"):
        torch.manual_seed(0)
        s = _strategy(learner, digits, update=update, **args)
        s.model.train()
        s.is_training = True  # one hand-driven training step, as Avalanche's training_epoch does
        s.mbatch = [digits.x_train[:32], digits.y_train[:32], torch.zeros(32, dtype=torch.long)]
        s.model.activate(digits.y_train)
        torch.manual_seed(1)  # same negatives in both modes
        s.optimizer.zero_grad()
        s.mb_output = s.forward()
        s.loss = s.criterion()
        s.backward()
        grads[update] = [p.grad.clone() for p in s.model.parameters()]
        grads[update + "_loss"] = s.loss.item()
    assert grads["fused_loss"] == pytest.approx(grads["blockwise_loss"], rel=1e-5)
    for a, b in zip(grads["fused"], grads["blockwise"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("objective,boost", [("sffa", 0.0), ("sffa", 1.0), ("hinton", 0.0), ("distance", 0.0)])
def test_batched_inference_equals_a_loop_over_labels(digits, objective, boost):
    """Winners-only (SFFA) and zero-padded goodness; boosted k-WTA ranks the same in both paths."""
    torch.manual_seed(0)
    net = FFNet(digits.input_shape, [32, 32], 10, make_objective(objective), split=objective == "sffa", k=4, boost=boost)
    for block in net.blocks:  # uneven duty cycles, so the boosted ranking differs from the plain one
        block.duty.uniform_(0, 2 * block.density)
    net.activate(torch.arange(10))
    net.max_rows = 50  # force several chunks
    x = digits.x_test[:37]
    batched = net(x)
    with torch.no_grad():  # the sparse inference path (k-WTA winners only) against the dense one
        sparse = net(x)
    loop = torch.stack([net.scores(x, torch.full((37, 1), c)).squeeze(1) for c in range(10)], 1)
    torch.testing.assert_close(batched, loop)
    torch.testing.assert_close(sparse, loop, rtol=1e-5, atol=1e-6)
    # the k-WTA winners passed on sparsely (index, value) give what the dense normalised activity gives
    labels, below, dense = torch.arange(10).expand(37, -1), None, 0
    for i, block in enumerate(net.blocks):
        h, _ = block(net.encode(x), net.codes, labels, below)
        below = rms_normalize(h, net.split)
        dense = dense + net.objective.goodness(h)
    torch.testing.assert_close(dense, loop, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("learner", ["sffa", "df"])
def test_standardized_input_ignores_brightness_and_contrast(learner, digits):
    x = digits.x_test[:8]
    scores = {}
    for standardize in (False, True):
        torch.manual_seed(0)
        net = _strategy(learner, digits, standardize_input=standardize).model
        net.activate(torch.arange(10))
        with torch.no_grad():
            scores[standardize] = (net(x), net(0.5 * x + 0.2))
    torch.testing.assert_close(*scores[True], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(*scores[False], rtol=1e-4, atol=1e-5)


def test_kwta_boosting_brings_idle_units_into_use(digits):
    usage = {}
    for boost in (0.0, 1.0):
        torch.manual_seed(0)
        s = _strategy("sffa", digits, hidden=(200, 200), epochs=3, k=8, boost=boost)
        s.train(make_stream(digits, 1).train_stream[0])
        with torch.no_grad():
            acts = s.model.activities(digits.x_test, digits.y_test[:, None])
        usage[boost] = [(a[:, 0] > 0).any(0).float().mean().item() for a in acts]
        if boost:  # duty cycles track the win rate: their mean is the target density k / width
            for block in s.model.blocks:
                assert block.duty.mean().item() == pytest.approx(block.density, rel=0.3)
    assert all(b > a for a, b in zip(usage[0.0], usage[1.0])), usage


def test_only_seen_classes_are_candidates(digits):
    net = FFNet(digits.input_shape, [16], 10, make_objective("sffa"), split=True, k=4)
    net.activate(torch.tensor([3, 7]))
    pred = net(digits.x_test[:50]).argmax(1)
    assert set(pred.tolist()) <= {3, 7}


def test_sample_negatives_never_returns_the_true_label():
    torch.manual_seed(0)
    classes = torch.tensor([0, 2, 5, 7, 9])
    y = classes[torch.randint(0, 5, (200,))]
    for mode, k in [("random", 2), ("all", 1), ("hardest", 3)]:
        scores = torch.rand(200, 5)
        neg = sample_negatives(y, classes, k, mode, scores)
        assert (neg != y[:, None]).all()
        assert neg.shape[1] == (4 if mode == "all" else k)
        assert torch.isin(neg, classes).all()
    hard = sample_negatives(y, classes, 1, "hardest", scores)
    masked = scores.clone()
    masked[classes[None, :] == y[:, None]] = -1
    assert (hard[:, 0] == classes[masked.argmax(1)]).all()


@pytest.mark.parametrize("width,k", [(700, 15), (16, 4), (30, 7), (13, 3), (8, 8)])
def test_chunked_topk_finds_the_same_winners(width, k):
    torch.manual_seed(0)
    p = torch.randn(50, 3, width).relu()  # ReLU zeros: ties among the losers
    vals, idx = topk_last(p, k)
    ref = p.topk(k, dim=-1).values
    torch.testing.assert_close(vals.sort(-1).values, ref.sort(-1).values)
    torch.testing.assert_close(p.gather(-1, idx), vals)  # the indices point at the values
    assert (idx.sort(-1).values.diff(dim=-1) > 0).all()  # k distinct units


def test_kwta_and_normalisation():
    block = FFBlock(0, 6, 0, 6, k=1, split=True)
    with torch.no_grad():
        block.inp.copy_(torch.eye(6))
        block.bias.zero_()
    x = torch.tensor([[1.0, 5.0, 3.0, 2.0, 0.5, 4.0]])
    h, (idx, vals) = block(x, torch.zeros(1, 0), torch.zeros(1, 1, dtype=torch.long))
    assert h.tolist() == [[[0.0, 5.0, 0.0, 0.0, 0.0, 4.0]]]
    dense = torch.zeros(1, 6).index_put_((torch.zeros_like(idx), idx), vals)  # the winners passed on
    torch.testing.assert_close(dense, rms_normalize(h[0], split=True))
    n = rms_normalize(torch.rand(4, 6) * 10, split=True)
    torch.testing.assert_close(n[:, :3].pow(2).mean(1), torch.ones(4), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("plugin,args", [
    ("replay", {"mem_size": 50}), ("ewc", {"ewc_lambda": 10.0}), ("si", {"si_lambda": 1.0}),
    ("gem", {"patterns_per_experience": 20}), ("agem", {"patterns_per_experience": 20, "sample_size": 20}),
    ("agem", {"patterns_per_experience": 20, "sample_size": 20, "per_block": True}),
])
def test_plugins_compose_with_ff_learners(plugin, args, digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 2)
    s = _strategy("sffa", digits, hidden=(32,), k=4, plugins={plugin: args})
    for exp in stream.train_stream:
        s.train(exp)
    res = s.eval(stream.test_stream)
    assert 0.0 <= res["Top1_Acc_Stream/eval_phase/test_stream"] <= 1.0
    assert all(torch.isfinite(p).all() for p in s.model.parameters())


def test_agem_per_block_projects_each_block_on_its_own(digits):
    from types import SimpleNamespace

    from ffcl.strategies.baselines import AGEM

    torch.manual_seed(0)
    s = _strategy("sffa", digits, hidden=(8, 8), k=2)
    params = list(s.model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    grads = [p.grad.clone() for p in params]
    block0 = [id(p) for p in s.model.blocks[0].parameters()]
    # reference: opposite to block 0's gradient (a conflict), along block 1's (no conflict, and
    # larger, so the whole-vector dot product is positive)
    ref = torch.cat([(-g if id(p) in block0 else 3 * g).flatten() for p, g in zip(params, grads)])
    plugin = AGEM(20, 20, per_block=True)
    plugin.memory, plugin.reference_gradients = [[torch.zeros(1)]], ref
    plugin.after_backward(SimpleNamespace(model=s.model))
    for p, g in zip(params, grads):
        if id(p) in block0:  # g = -r: projected away entirely
            assert torch.allclose(p.grad, torch.zeros_like(p), atol=1e-5)
        else:
            assert torch.equal(p.grad, g)  # untouched
    whole = AGEM(20, 20)  # one projection of the whole vector: its dot is positive, nothing projected
    for p, g in zip(params, grads):
        p.grad = g.clone()
    whole.buffers, whole.reference_gradients = [None], ref
    whole.after_backward(SimpleNamespace(model=s.model, device="cpu"))
    assert all(torch.equal(p.grad, g) for p, g in zip(params, grads))


def test_logit_distillation_plugins_fail_clearly(digits):
    with pytest.raises(ValueError, match="distils class logits"):
        _strategy("sffa", digits, plugins={"lwf": {}})


def test_cosine_lr_decays_within_each_experience(digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 2)
    s = _strategy("sffa", digits, hidden=(16,), k=4, epochs=2, plugins={"cosine_lr": {"min_ratio": 0.1}})
    lrs = []

    class Record:
        def __getattr__(self, name):
            return lambda *a, **k: None

        def after_training_iteration(self, strategy, **kw):
            lrs.append(strategy.optimizer.param_groups[0]["lr"])

    s.plugins.append(Record())
    s.train(stream.train_stream[0])
    first = len(lrs)
    s.train(stream.train_stream[1])
    assert lrs[0] == pytest.approx(3e-3)  # starts at the recipe's lr
    assert all(a > b for a, b in zip(lrs[: first - 1], lrs[1:first]))  # decreasing within the experience
    assert lrs[first - 1] > 3e-4 * 0.99 and lrs[first - 1] < 3e-3 * 0.2
    assert lrs[first] == pytest.approx(3e-3)  # restarts at the next experience
