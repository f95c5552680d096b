"""Conv nets (issue 15): the FF learners and the back-propagation baselines on vgg, resnet and
mobilenet stages; the Trifecta and DC learners; block-local gradients and overlapping updates."""

from __future__ import annotations

import pytest
import torch

from ffcl.config import NAMED_NETS, ConfigError, load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.nn.conv import ConvNet
from ffcl.nn.conv_ff import ConvFFNet
from ffcl.objectives import DimensionalityCompression, SymBa, effective_dimensionality
from ffcl.strategies import build_strategy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _train(recipe: str, digits, stream_experiences: int = 1, epochs: int = 8, **sets):
    cfg = load_strategy(recipe)
    cfg.epochs = epochs
    for key, value in sets.items():
        if key in cfg.__dataclass_fields__:
            setattr(cfg, key, value)
        else:
            cfg.learner_args[key] = value
    torch.manual_seed(0)
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    for exp in make_stream(digits, stream_experiences).train_stream:
        strategy.train(exp)
    strategy.model.eval()
    with torch.no_grad():
        return strategy, (strategy.model(digits.x_test).argmax(1) == digits.y_test).float().mean().item()


@pytest.mark.parametrize("recipe,sets,floor", [
    ("trifecta", dict(hidden=[32, 64], lr=3e-3), 0.85),
    ("df", dict(net="vgg", hidden=[32, 64]), 0.85),
    ("sffa", dict(net="vgg", hidden=[32, 64]), 0.9),
    ("ff", dict(net="vgg", hidden=[32, 64], score_first_layer=True), 0.7),
    ("trifecta", dict(net="resnet", hidden=[16, 32], lr=3e-3), 0.85),
    ("dc", dict(hidden=[32, 64]), 0.8),
    ("sff", dict(hidden=[32, 64]), 0.9),
    ("sff", dict(net="resnet", hidden=[16, 32]), 0.9),
    ("df_proto", dict(hidden=[32, 64], stages_per_block=1), 0.9),
    ("naive", dict(net="vgg", hidden=[32, 64]), 0.9),
    ("naive", dict(net="mobilenet", hidden=[16, 32]), 0.9),
])
def test_each_conv_learner_learns_digits_in_seconds(recipe, sets, floor, digits):
    _, acc = _train(recipe, digits, **sets)
    assert acc > floor, f"{recipe} {sets}: {acc:.3f}"


def _block_grads(model: ConvFFNet, loss: torch.Tensor) -> list[bool]:
    """Which blocks a loss's gradient reaches."""
    params = [list(b.parameters()) for b in model.blocks]
    grads = torch.autograd.grad(loss, [p for ps in params for p in ps], allow_unused=True, retain_graph=True)
    reached, i = [], 0
    for ps in params:
        g = grads[i : i + len(ps)]
        reached.append(any(x is not None and x.abs().sum() > 0 for x in g))
        i += len(ps)
    return reached


@pytest.mark.parametrize("net", ["vgg", "resnet", "mobilenet"])
def test_no_gradient_leaves_a_block(net, digits):
    """Each block's loss reaches all of its own parameters (back-propagation inside a block: the two
    convolutions and the shortcut of a residual block) and no other block's."""
    torch.manual_seed(0)
    model = ConvFFNet(net, (1, 8, 8), [8, 16, 16], 10, SymBa())
    labels = torch.stack([digits.y_train[:16], (digits.y_train[:16] + 1) % 10], 1)
    acts = model.activities(digits.x_train[:16], labels)
    for i, a in enumerate(acts):
        loss = model.objective.loss(a)
        assert _block_grads(model, loss) == [j == i for j in range(3)]
        grads = torch.autograd.grad(loss, list(model.blocks[i].parameters()), allow_unused=True, retain_graph=True)
        used = [g is not None and g.abs().sum() > 0 for g, (n, p) in zip(grads, model.blocks[i].named_parameters())
                if "bn" not in n and not n.endswith(".0.weight")]  # every conv of the block learns
        assert all(used), f"block {i}: parameters without gradient"


@pytest.mark.parametrize("learner", ["df", "sff", "df_proto", "dc"])
def test_stages_per_block_makes_several_stages_one_local_block(learner, digits):
    """Block-local hybrid training on a vgg net: with two stages per block, a block's loss reaches
    both of its convolutions and nothing of the other block."""
    cfg = load_strategy(learner)
    cfg.net, cfg.hidden, cfg.stages_per_block = "vgg", [8, 8, 16, 16, 24], 2
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    model = strategy.model.features if learner == "dc" else strategy.model
    assert len(model.blocks) == 3 and [len(b.stage if hasattr(b, "stage") else b) for b in model.blocks] == [2, 2, 1]
    x, y = digits.x_train[:16], digits.y_train[:16]
    if learner == "df":
        losses = [model.objective.loss(a) for a in model.activities(x, torch.stack([y, (y + 1) % 10], 1))]
    elif learner in ("sff", "df_proto"):
        if learner == "sff":
            assert [h.in_channels for h in model.heads] == [8, 16, 24]
        else:  # centroids of the blocks' outputs, 8 x 4 x 4, 16 x 2 x 2 and 24 x 2 x 2
            assert [h.centroids.shape[1] for h in model.heads] == [128, 64, 96]
        losses = [m.pow(2).mean() for m in model.class_maps(x)]
    else:
        losses = [a.pow(2).mean() for a in model.noisy_activities(x)]
    for i, loss in enumerate(losses):
        for j, block in enumerate(model.blocks):
            convs = [m.weight for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
            grads = torch.autograd.grad(loss, convs, allow_unused=True, retain_graph=True)
            assert [g is not None and g.abs().sum() > 0 for g in grads] == [i == j] * len(convs)
    cfg = load_strategy(learner)
    cfg.stages_per_block = 2
    cfg.net = "mlp"
    with pytest.raises(ConfigError, match="'stages_per_block' groups the stages of a conv net"):
        cfg.validate("strategy")


@pytest.mark.parametrize("net", ["vgg", "resnet"])
def test_sff_block_losses_stay_in_their_stage_and_head(net, digits):
    from ffcl.nn.conv_ff import SFFNet
    from ffcl.objectives import DistanceNPair

    torch.manual_seed(0)
    model = SFFNet(net, (1, 8, 8), [8, 16, 16], 10, DistanceNPair(1.0, 1.0))
    maps = model.class_maps(digits.x_train[:16])
    assert [m.shape[:2] for m in maps] == [(16, 10)] * 3
    for i, m in enumerate(maps):
        loss = m.pow(2).mean()
        for j, (stage, head) in enumerate(zip(model.blocks, model.heads)):
            grads = torch.autograd.grad(loss, [*stage.parameters(), *head.parameters()], allow_unused=True, retain_graph=True)
            assert any(g is not None and g.abs().sum() > 0 for g in grads) == (i == j)


def test_df_prototypes_score_each_class_by_its_centroid_distance(digits):
    """df_proto's score of class c at a block is -||LN(pooled z) - mu_c||^2 / D: placing two
    classes' centroids on two images' features makes each image score highest for its own, and the
    score is exactly minus the mean squared distance."""
    from ffcl.nn.conv_ff import SFFNet
    from ffcl.objectives import CentroidDistance

    torch.manual_seed(0)
    model = SFFNet("vgg", (1, 8, 8), [8, 16], 3, CentroidDistance(), head="prototype", score_layers="last").eval()
    x = digits.x_train[:2]
    head = model.heads[-1]
    with torch.no_grad():
        maps = model.class_maps(x)
    u = maps[-1][:, 0] + head.centroids[0]  # the displacement from centroid 0 (the origin) is the feature itself
    assert torch.allclose(u.pow(2).mean(1), torch.ones(2), atol=1e-4)  # per-sample standardised
    with torch.no_grad():
        head.centroids[1], head.centroids[2] = u[0], u[1]
        scores = model(x)
    assert scores.argmax(1).tolist() == [1, 2]
    torch.testing.assert_close(scores[0], -(u[0] - head.centroids).pow(2).mean(1))


def test_dc_blocks_normalise_their_input_without_a_learned_shift():
    """DC's vgg stages open with batch norm without affine parameters (the authors'), so no learned
    shift can silence a block; finding the feature size runs a dummy pass in eval mode, so the running
    statistics stay at their start."""
    from ffcl.nn.dc import DCConvNet

    net = DCConvNet("vgg", (1, 8, 8), [8, 16], DimensionalityCompression())
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 2
    for bn in norms:
        assert not bn.affine and bn.weight is None
        assert bn.num_batches_tracked == 0 and bn.running_var.eq(1).all() and bn.training
    assert net.feature_size == 16 * 4 * 4


def test_sff_blockwise_update_gives_the_fused_gradients(digits):
    """update = "blockwise" back-propagates each block's loss before the next block runs: the same
    loss and gradients as one backward of the summed losses."""
    x, y = digits.x_train[:32], digits.y_train[:32]
    grads, losses = [], []
    for update in ("fused", "blockwise"):
        cfg = load_strategy("sff")
        cfg.hidden, cfg.learner_args["update"] = [8, 16, 16], update
        torch.manual_seed(0)
        strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
        strategy.is_training = True
        strategy.model.train()
        strategy.mbatch = [x, y, torch.zeros_like(y)]
        strategy.optimizer.zero_grad()
        strategy.mb_output = strategy.forward()
        strategy.loss = strategy.criterion()
        strategy.backward()
        losses.append(strategy.loss.item())
        grads.append([p.grad.clone() for p in strategy.model.parameters()])
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
    cfg.learner_args["update"] = "overlap"
    with pytest.raises(ConfigError, match="update must be one of fused, blockwise"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)


def test_overlapping_updates_reach_exactly_the_intended_blocks(digits):
    """The Trifecta's windows: on even iterations losses at blocks 0 and 2, the loss of block 2 also
    reaching block 1, block 3 untouched; on odd ones losses at 1 and 3, each reaching the block below."""
    cfg = load_strategy("trifecta")
    cfg.hidden, cfg.stages_per_block = [8, 8, 16, 16], 1
    cfg.learner_args.update(negatives="random", hard_candidates=0, training_scores=False)  # no scoring pass, which runs every block
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    model = strategy.model
    x, y = digits.x_train[:16], digits.y_train[:16]
    model.activate(torch.arange(10))
    labels = torch.stack([y, (y + 1) % 10], 1)
    for iteration, windows in ((0, {0: [0], 2: [1, 2]}), (1, {1: [0, 1], 3: [2, 3]})):
        blocks = strategy.loss_blocks(iteration)
        assert blocks == sorted(windows)
        acts = model.activities(x, labels, [i in blocks for i in range(4)])
        for i in blocks:
            assert _block_grads(model, model.objective.loss(acts[i])) == [j in windows[i] for j in range(4)]
    # and the template's step puts the gradients exactly there; a block above every loss does not even run
    strategy.is_training = True
    top_norm = model.blocks[3].stage[0]  # the top block's input batch norm: its running mean moves only when it runs
    for iteration, reached in ((0, [True, True, True, False]), (1, [True, True, True, True])):
        before = top_norm.running_mean.clone()
        strategy.clock.train_iterations = iteration
        strategy.model.train()
        strategy.mbatch = [x, y, torch.zeros_like(y)]
        strategy.optimizer.zero_grad()
        strategy.mb_output = strategy.forward()
        strategy.criterion().backward()
        got = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in b.parameters()) for b in model.blocks]
        assert got == reached
        assert torch.equal(top_norm.running_mean, before) == (not reached[3])
    cfg.stages_per_block = 4  # one block: nothing to overlap with, so it learns at every iteration
    assert build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10).loss_blocks(1) == [0]


def test_hard_candidates_pick_the_hardest_of_the_scored_wrong_labels(digits):
    """With every wrong label a candidate, the chosen negative is the highest-scoring wrong class of
    the full scoring pass; bad settings are refused with what to change."""
    cfg = load_strategy("trifecta")
    cfg.hidden, cfg.stages_per_block = [8, 16], 1
    cfg.learner_args.update(negatives="hardest", hard_candidates=9, training_scores=False)
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    model = strategy.model.eval()  # batch norm from running statistics: each image's scores alone decide
    model.activate(torch.arange(10))
    x, y = digits.x_train[:32], digits.y_train[:32]
    with torch.no_grad():
        scores = model(x).scatter(1, y[:, None], float("-inf"))  # the wrong classes' scores
    strategy.is_training, strategy.mbatch = True, [x, y, torch.zeros_like(y)]
    strategy.clock.train_iterations = 0
    strategy.forward()
    assert torch.equal(strategy._labels[:, 0], y)
    assert torch.equal(strategy._labels[:, 1], scores.argmax(1))
    for bad in ({"negatives": "random"}, {"training_scores": True}, {"n_negatives": 10}):
        cfg.learner_args.update({"negatives": "hardest", "training_scores": False, "n_negatives": 1, **bad})
        with pytest.raises(ConfigError, match="hard_candidates = 9 needs negatives = 'hardest'"):
            build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)


def test_label_planes_grow_and_keep_the_old_ones(digits):
    model = ConvFFNet("vgg", (1, 8, 8), [8, 16], 4, SymBa())
    old = model.blocks[0].label.detach().clone()
    model.grow(7)
    assert model.max_classes == 7 and model.blocks[0].label.shape[0] == 7 and model.active.shape == (7,)
    assert torch.equal(model.blocks[0].label[:4], old)
    assert model(digits.x_test[:5]).shape == (5, 7)


def test_dc_consistency_of_a_conv_block_reduces_to_the_dense_form():
    obj = DimensionalityCompression()
    h = torch.randn(6, 4, 5)
    assert torch.allclose(obj.loss(h), obj.loss(h[:, :, None]))
    spatial = torch.randn(6, 4, 9, 5)  # 9 positions: consistency over the 4 copies at each position, diversity over 54
    expected = 0.5 * effective_dimensionality(spatial.transpose(1, 2)).mean() - 0.5 * effective_dimensionality(spatial.mean(1).reshape(54, 5))
    assert torch.allclose(obj.loss(spatial), expected)


def test_dc_prediction_is_reproducible_and_its_readout_alone_gets_the_label(digits):
    strategy, _ = _train("dc", digits, epochs=1, hidden=[8, 16])
    model = strategy.model
    with torch.no_grad():
        assert torch.equal(model(digits.x_test[:20]), model(digits.x_test[:20]))  # fixed noise seed
    strategy.model.train()
    strategy.mbatch = [digits.x_train[:32], digits.y_train[:32], torch.zeros(32, dtype=torch.long)]
    strategy.optimizer.zero_grad()
    strategy.mb_output = strategy.forward()
    features = model.features
    ce = torch.nn.functional.cross_entropy(strategy.mb_output, strategy.mb_y)
    grads = torch.autograd.grad(ce, list(features.parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)  # labels reach the readout only


@pytest.mark.parametrize("net", ["vgg", "resnet", "mobilenet"])
def test_bp_baselines_train_the_same_conv_net(net, digits):
    cfg = load_strategy("replay")
    cfg.net, cfg.hidden, cfg.epochs = net, [8, 16], 1
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    assert isinstance(strategy.model, ConvNet)
    for exp in make_stream(digits, 2).train_stream:
        strategy.train(exp)
    assert strategy.model(digits.x_test[:4]).shape == (4, 10)


def test_conv_recipes_refuse_what_they_cannot_do(digits):
    cfg = load_strategy("sffa_alloc")
    cfg.net, cfg.hidden = "vgg", [8, 16]
    with pytest.raises(ConfigError, match="neuron allocation needs an SFFA network"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    cfg = load_strategy("trifecta")
    with pytest.raises(ConfigError, match="needs images"):
        build_strategy(cfg, input_shape=(64,), num_classes=10)
    for learner in ("dc", "df_proto"):
        cfg = load_strategy(learner)
        cfg.net = "mlp"
        with pytest.raises(ConfigError, match="set strategy.net"):
            build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    cfg = load_strategy("df")
    cfg.net, cfg.learner_args["code_dim"] = "vgg", 50
    with pytest.raises(ConfigError, match="code_dim is not used by df on a vgg net; it applies to mlp nets"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    cfg = load_strategy("naive")
    cfg.net = "alexnet"
    with pytest.raises(ConfigError, match="'net' must be one of"):
        cfg.validate("strategy")
    for name, (net, widths) in NAMED_NETS.items():  # the papers' names say what to write instead, which then builds
        cfg.net = name
        with pytest.raises(ConfigError, match=f'the {name} architecture is net = "{net}" with hidden = '):
            cfg.validate("strategy")
        cfg.net, cfg.hidden = net, widths
        cfg.validate("strategy")
        model = build_strategy(cfg, input_shape=(3, 32, 32), num_classes=10).model.eval()
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("recipe", ["trifecta", "dc", "sff", "df_proto", "df_proto_replay"])
def test_new_recipes_run_a_short_stream(recipe, make_config, tmp_path):
    from ffcl.experiment import load_learner, run_experiment

    cfg = make_config("split_digits", recipe, ["strategy.hidden=[8, 16]", "strategy.epochs=1"])
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert len(m["accuracy_matrix"]) == 5
    weights = load_learner(tmp_path / "run", weights_only=True).model.eval()
    full = load_learner(tmp_path / "run").model.eval()
    x = load_dataset("digits").x_test[:50]
    with torch.no_grad():
        assert torch.equal(weights(x), full(x))


def test_trifecta_refuses_online_runs_without_training_scores(make_config, tmp_path):
    from ffcl.experiment import run_experiment

    cfg = make_config("online_split_digits", "trifecta", ["strategy.hidden=[8, 16]", "strategy.learner_args.training_scores=false"])
    with pytest.raises(ConfigError, match="training_scores=true"):
        run_experiment(cfg, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def _write_cifar10(root, per_class: int = 3) -> None:
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def part(n: int) -> dict:
        y = [i % 10 for i in range(n)]
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": y}

    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(part(10 * per_class), protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(part(20), protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2))


def _write_svhn(root, n: int = 60) -> None:
    import numpy as np
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, size in (("train", n), ("test", n // 3)):
        savemat(root / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, size), dtype=np.uint8),
                                              "y": (np.arange(size) % 10 + 1).astype(np.uint8)[:, None]})


@pytest.mark.parametrize("scenario,strategy,writer", [
    ("split_cifar10", "naive", _write_cifar10), ("joint_cifar10", "replay", _write_cifar10),
    ("split_svhn", "df", _write_svhn), ("joint_svhn", "trifecta", _write_svhn),
])
def test_cifar_and_svhn_recipes_train_their_conv_net(scenario, strategy, writer, make_config, tmp_path):
    """On files in the standard formats: a recipe on an MLP trains the data set's conv net."""
    from ffcl.experiment import load_learner, run_experiment

    writer(tmp_path / "data")
    cfg = make_config(scenario, strategy, [f"scenario.data_root='{tmp_path / 'data'}'", "scenario.hidden=[8, 16]", "scenario.epochs=1"])
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert len(m["accuracy_matrix"]) == cfg.scenario.n_experiences
    model = load_learner(tmp_path / "run", weights_only=True).model
    assert isinstance(model, (ConvNet, ConvFFNet))


def test_a_scenario_net_leaves_learners_without_one_alone(make_config):
    from ffcl.experiment import strategy_config

    cfg = make_config("split_cifar10", "slda")
    assert strategy_config(cfg).net == "mlp"
    cfg = make_config("split_cifar10", "naive")
    assert (strategy_config(cfg).net, strategy_config(cfg).hidden) == ("vgg", cfg.scenario.hidden)
    cfg = make_config("split_cifar10", "naive", ["strategy.net='resnet'", "strategy.hidden=[8, 16]"])
    assert (strategy_config(cfg).net, strategy_config(cfg).hidden) == ("resnet", [8, 16])


@pytest.mark.parametrize("recipe", ["sff", "trifecta", "df_proto"])
def test_a_conv_learner_adapts_to_new_classes(recipe, make_config, tmp_path):
    """`ffcl adapt` grows a conv learner's per-class parts (heads, label planes) for labels it never saw."""
    from test_adapt import new_classes_npz

    from ffcl.adapt import adapt_run
    from ffcl.experiment import run_experiment

    cfg = make_config("split_digits", recipe, ["strategy.hidden=[8, 16]", "strategy.epochs=1"])
    run_experiment(cfg, tmp_path / "run", quiet=True)
    m = adapt_run(tmp_path / "run", new_classes_npz(tmp_path / "new.npz"), tmp_path / "adapted", epochs=1, quiet=True)
    assert set(m["new_classes"].values()) == {10, 11}
    assert len(m["accuracy_matrix"][-1]) == len(m["columns"])


@pytest.mark.parametrize("shape", [(4, 5, 32), (3, 40, 8), (7, 16, 16)])
def test_effective_dimensionality_is_the_participation_ratio_either_way(shape):
    """Formed from y y^T when there are fewer responses than dimensions: the same eigenvalues."""
    torch.manual_seed(0)
    y = torch.randn(*shape, dtype=torch.float64)
    eig = torch.linalg.eigvalsh(y.transpose(-1, -2) @ y / (shape[-2] - 1))
    assert torch.allclose(effective_dimensionality(y), eig.sum(-1) ** 2 / eig.pow(2).sum(-1))
