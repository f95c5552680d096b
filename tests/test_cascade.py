"""Candidate scoring: the factorised label input, and the candidate cascade (issue 28).

The label's contribution to a block is a per-class offset, W [h; x; code_c] = W_h h + W_x x + W_c code_c,
so an FF block computes the image projection once per image and adds one row per class. A cascade
keeps the best candidates after each block and runs the deeper blocks on those alone; a shortlist
lets only the candidates whose input class mean lies nearest the image enter the first block.
"""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from ffcl.config import ConfigError, StrategyConfig
from ffcl.data import load_dataset
from ffcl.nn.conv_ff import ConvFFNet
from ffcl.nn.ff import FFNet, rms_normalize
from ffcl.objectives import SymBa, make_objective
from ffcl.strategies import build_strategy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


NETS = {  # name -> (objective, FFNet arguments): SFFA's split k-WTA, DF's dense net, Hinton FF's one-hot first-layer label
    "sffa": ("sffa", dict(split=True, k=4)),
    "df": ("distance", dict()),
    "ff": ("hinton", dict(code="onehot", residual=False, skip_first_in_score=True)),
}


def _net(name: str, digits, hidden=(48, 48, 48)) -> FFNet:
    torch.manual_seed(0)
    objective, kw = NETS[name]
    net = FFNet(digits.input_shape, list(hidden), 10, make_objective(objective), **kw)
    net.activate(torch.arange(10))
    return net.eval()


def _concatenated_scores(net: FFNet, x: torch.Tensor) -> torch.Tensor:
    """Scores [B, 10] the unfactorised way: per class, one product of the concatenated input
    [h_prev; x; code_c] with the stacked weights, then ReLU, k-WTA and RMS normalisation."""
    x = net.encode(x)
    out = []
    for c in range(10):
        below, total = None, 0
        for i, block in enumerate(net.blocks):
            parts, weights = [], []
            for inp, w in ((below, block.prev), (x, block.inp), (net.codes[c].expand(len(x), -1), block.code)):
                if w is not None:
                    parts.append(inp)
                    weights.append(w)
            h = (torch.cat(parts, 1) @ torch.cat(weights, 0) + block.bias).relu()
            if block.sparse:
                p = h.view(len(x), block.parts, -1)
                top = p.topk(block.k, dim=-1)
                h = torch.zeros_like(p).scatter(-1, top.indices, top.values).view_as(h)
            if i in net.score_layers:
                total = total + net.objective.goodness(h)
            below = rms_normalize(h, net.split)
        out.append(total)
    return torch.stack(out, 1)


@pytest.mark.parametrize("name", list(NETS))
def test_the_factorised_label_input_gives_the_concatenated_products_predictions(name, digits):
    """Not bit for bit: the factorised sum adds the same products in another order, and float
    addition is not associative; equal to float32 rounding, and the same predicted class."""
    net = _net(name, digits)
    x = digits.x_test[:200]
    with torch.no_grad():
        fast, slow = net(x), _concatenated_scores(net, x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-4)
    assert torch.equal(fast.argmax(1), slow.argmax(1))


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("grad", [False, True])
def test_a_cascade_keeping_every_class_is_exhaustive_scoring_bit_for_bit(name, grad, digits):
    net = _net(name, digits)
    net.max_rows = 300  # several chunks
    x = digits.x_test[:97]
    with torch.set_grad_enabled(grad):
        exhaustive = net(x)
        net.set_cascade([10, 10])
        full = net(x)
        net.set_cascade([25, 10])  # more than the candidates: all of them
        more = net(x)
    assert torch.equal(full, exhaustive) and torch.equal(more, exhaustive)


def test_a_conv_cascade_keeping_every_class_is_exhaustive_scoring_bit_for_bit(digits):
    torch.manual_seed(0)
    net = ConvFFNet("vgg", (1, 8, 8), [8, 16, 16], 10, SymBa())
    net.activate(torch.arange(10))
    net.eval()
    x = digits.x_test[:40].view(-1, 1, 8, 8)
    with torch.no_grad():
        exhaustive = net(x)
        net.set_cascade([10, 10])
        assert torch.equal(net(x), exhaustive)
        net.set_cascade([4, 2])
        pred = net(x).argmax(1)
        first = net.goodness(net.activities(x, torch.arange(10).expand(40, -1), depth=1))[..., 0]
    assert ((pred[:, None] == first.topk(4, 1).indices).any(1)).all()  # a class pruned after block 0 is never predicted


@pytest.mark.parametrize("name", list(NETS))
def test_a_cascade_ranks_the_survivors_by_their_full_score_and_the_pruned_below_them(name, digits):
    net = _net(name, digits)
    x = digits.x_test[:64]
    labels = torch.arange(10).expand(len(x), -1)
    with torch.no_grad():
        exhaustive = net.candidate_scores(x, labels, sparse=False)
        g = net.goodness(net.activities(x, labels, depth=2))  # [B, 10, 2]
        net.set_cascade([6, 3])
        cascaded = net(x)
    after0 = g[..., 0]  # the key after block 0 (FF's too: its first block is not scored, so its goodness ranks)
    key1 = torch.stack([g[..., i] for i in net.score_layers if i < 2], -1).sum(-1)
    kept0 = after0.topk(6, 1).indices
    key1 = key1.gather(1, kept0)
    kept1 = kept0.gather(1, key1.topk(3, 1).indices)  # the three that reach block 2
    top3 = cascaded.topk(3, 1).indices
    assert torch.equal(top3.sort(1).values, kept1.sort(1).values)
    torch.testing.assert_close(cascaded.gather(1, kept1), exhaustive.gather(1, kept1), rtol=1e-5, atol=1e-5)
    top6 = cascaded.topk(6, 1).indices  # then the three pruned after block 1, by their partial score
    assert torch.equal(top6.sort(1).values, kept0.sort(1).values)
    dropped = cascaded.topk(10, 1).indices[:, 6:]  # and last those pruned after block 0, in their order after block 0
    assert torch.equal(after0.gather(1, dropped).argsort(1, descending=True), torch.arange(4).expand(len(x), -1))
    assert (cascaded > -1e8).all()  # never mistaken for an inactive class


def test_sparse_and_dense_cascades_agree(digits):
    net = _net("sffa", digits)
    x = digits.x_test[:50]
    labels = torch.arange(10).expand(len(x), -1)
    with torch.no_grad():
        dense = net.candidate_scores(x, labels, sparse=False, cascade=(5, 2))
        sparse = net.candidate_scores(x, labels, sparse=True, cascade=(5, 2))
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-5)
    assert torch.equal(sparse.argmax(1), dense.argmax(1))


def test_the_cascade_refuses_values_a_net_cannot_use(digits):
    net = _net("df", digits, hidden=(32, 32))
    with pytest.raises(ValueError, match="at most 1 value"):
        net.set_cascade([5, 2])
    with pytest.raises(ValueError, match="integers >= 1"):
        net.set_cascade([0])


def _strategy(learner: str, data, hidden, **args):
    cfg = StrategyConfig(learner=learner, hidden=list(hidden), epochs=1, batch_size=32, lr=3e-3, learner_args=args)
    return build_strategy(cfg, input_shape=data.input_shape, num_classes=data.num_classes,
                          evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]))


def test_recipes_set_the_cascade_and_get_one_line_errors(digits):
    strategy = _strategy("df", digits, (32, 32, 32), cascade=[5, 2])
    assert strategy.model.cascade == (5, 2)
    assert _strategy("sffa", digits, (32, 32)).model.cascade == ()
    with pytest.raises(ConfigError, match="a net of 1 block"):
        _strategy("sffa", digits, (32,), cascade=[3])
    with pytest.raises(ConfigError, match="cascade"):
        _strategy("ff", digits, (32, 32), cascade=["3"])


@pytest.mark.parametrize("learner", ["df", "ff"])
def test_hardest_negatives_come_from_the_cascade(learner, digits):
    """The training-time scoring pass (training accuracy, hardest negatives) goes through the cascade."""
    strategy = _strategy(learner, digits, (32, 32), cascade=[3])
    model = strategy.model
    model.activate(torch.arange(10))
    x, y = digits.x_train[:64], digits.y_train[:64]
    strategy.mbatch = [x, y, torch.zeros_like(y)]
    strategy.model.train()
    strategy.is_training = True
    strategy._plan = None
    out = strategy.forward()
    with torch.no_grad():
        cascaded = model.chunked_scores(x, torch.arange(10).expand(64, -1))
    assert torch.equal(out, cascaded)
    negs = strategy._labels[:, 1:]
    top = cascaded.scatter(1, y[:, None], float("-inf")).topk(negs.shape[1], 1).indices
    assert torch.equal(negs.sort(1).values, top.sort(1).values)


def _observed(name: str, digits, shortlist: int, hidden=(48, 48, 48)) -> FFNet:
    net = _net(name, digits, hidden)
    net.set_shortlist(shortlist)
    for x, y in zip(digits.x_train.split(100), digits.y_train.split(100)):
        net.observe(x, y)
    return net


@pytest.mark.parametrize("name", list(NETS))
def test_a_shortlist_of_every_class_is_exhaustive_scoring_bit_for_bit(name, digits):
    net = _observed(name, digits, 10)
    x = digits.x_test[:100]
    with torch.no_grad():
        net.set_shortlist(0)
        exhaustive = net(x)
        net.set_shortlist(10)
        assert torch.equal(net(x), exhaustive)
        net.set_shortlist(25)
        assert torch.equal(net(x), exhaustive)
        net.set_cascade([10, 10])
        assert torch.equal(net(x), exhaustive)


def test_the_class_means_are_the_training_images_means(digits):
    net = _observed("sffa", digits, 4)
    for c in range(10):
        mine = digits.y_train == c
        assert net.input_count[c].item() == mine.sum().item()
        torch.testing.assert_close(net.input_sum[c] / net.input_count[c], digits.x_train[mine].flatten(1).mean(0))


def test_the_shortlist_lets_the_nearest_class_means_in_and_ranks_the_rest_below(digits):
    net = _observed("df", digits, 4)
    x = digits.x_test[:100]
    mean = net.input_sum / net.input_count[:, None]
    nearest = torch.cdist(x.flatten(1), mean).topk(4, 1, largest=False).indices
    with torch.no_grad():
        scores = net(x)
        full = net.candidate_scores(x, torch.arange(10).expand(len(x), -1))
    top4 = scores.topk(4, 1).indices
    assert torch.equal(top4.sort(1).values, nearest.sort(1).values)  # only the shortlist went through the blocks
    torch.testing.assert_close(scores.gather(1, top4), full.gather(1, top4))  # and they score as exhaustively
    rest = scores.topk(10, 1).indices[:, 4:]  # the others below them, nearest first
    dist = torch.cdist(x.flatten(1), mean).gather(1, rest)
    assert (dist[:, 1:] >= dist[:, :-1] - 1e-4).all()


def test_a_class_without_statistics_is_always_shortlisted(digits):
    net = _net("df", digits)
    net.set_shortlist(2)
    net.observe(digits.x_train[:300], digits.y_train[:300].clamp(max=8))  # class 9 never observed
    assert net.input_count[9] == 0
    with torch.no_grad():
        top2 = net(digits.x_test[:50]).topk(2, 1).indices
    assert (top2 == 9).any(1).all()


def test_the_shortlist_grows_with_the_net_and_refuses_what_it_cannot_use(digits):
    net = _observed("sffa", digits, 3)
    net.grow(14)
    assert net.input_sum.shape == (14, 64) and net.input_count[10:].eq(0).all()
    with pytest.raises(ValueError, match="integer >= 0"):
        net.set_shortlist(-1)
    with pytest.raises(ConfigError, match="shortlist"):
        _strategy("df", digits, (32, 32), shortlist="3")
    assert _strategy("ff", digits, (32, 32)).model.shortlist == 0  # the default: every class enters


def test_training_merges_each_minibatch_into_the_means_after_scoring_it(digits):
    """The training-time scoring pass (output, hardest negatives) uses the means from before the
    minibatch, which is merged afterwards; the means survive a state-dict round trip (checkpoints)."""
    strategy = _strategy("df", digits, (32, 32), shortlist=3, negatives="hardest")
    model = strategy.model
    model.activate(torch.arange(10))
    model.observe(digits.x_train[64:400], digits.y_train[64:400])
    x, y = digits.x_train[:64], digits.y_train[:64]
    with torch.no_grad():
        before = model.chunked_scores(x, torch.arange(10).expand(64, -1))
    strategy.mbatch = [x, y, torch.zeros_like(y)]
    strategy.model.train()
    strategy.is_training = True
    strategy._plan = None
    assert torch.equal(strategy.forward(), before)
    assert model.input_count.sum().item() == 400
    twin = _strategy("df", digits, (32, 32), shortlist=3).model
    twin.load_state_dict(model.state_dict())
    assert torch.equal(twin.input_sum, model.input_sum)
