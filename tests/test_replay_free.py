"""Tests for the replay-free learners: class Gaussians (slda, ncm), DC features with an LDA readout
(dc_lda, the replay_free recipe) and the generative classifier (genclass)."""

from __future__ import annotations

import pickle

import warnings

import numpy as np
import pytest
import torch
from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from torch.utils.data import TensorDataset

from ffcl.config import ConfigError, StrategyConfig, load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.data.datasets import DataError
from ffcl.nn.dc import DCNet
from ffcl.objectives import DimensionalityCompression, effective_dimensionality
from ffcl.readout import ClassGaussians, oas_shrinkage
from ffcl.strategies import build_strategy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def build(cfg: StrategyConfig, input_shape, num_classes):
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[])
    return build_strategy(cfg, input_shape=input_shape, num_classes=num_classes, evaluator=evaluator)


def predictions(strategy, x: torch.Tensor) -> torch.Tensor:
    strategy.model.eval()
    with torch.no_grad():
        return strategy.model(x).argmax(1)


# ------------------------------------------------------------------ the statistics


def test_streaming_statistics_equal_the_batch_statistics_in_any_order_and_split():
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(300, 7, generator=g, dtype=torch.float64), torch.randint(0, 4, (300,), generator=g)
    whole = ClassGaussians(7, 5)
    whole.update(f, y)
    parts = ClassGaussians(7, 5)
    perm = torch.randperm(300, generator=g)
    for i, idx in enumerate(perm.split(37)):  # uneven batches, classes interleaved, one class missing (4)
        parts.update(f[idx], y[idx])
        if i == 3:  # pickled (a checkpoint) while some batches' outer products are still pending
            parts = pickle.loads(pickle.dumps(parts))
    means = torch.stack([f[y == c].mean(0) for c in range(4)])
    scatter = sum((f[y == c] - means[c]).T @ (f[y == c] - means[c]) for c in range(4))
    for model in (whole, parts):
        assert torch.allclose(model.means[:4], means) and torch.allclose(model.state_dict()["scatter"], scatter)
        assert model.counts.tolist() == [float((y == c).sum()) for c in range(4)] + [0.0]
    assert (whole(f)[:, 4] < -1e8).all()  # a class with no data is never predicted


def test_lda_matches_sklearn_and_ncm_is_the_nearest_mean(digits):
    x, y = digits.x_train.flatten(1), digits.y_train
    xt = digits.x_test.flatten(1)
    lda = ClassGaussians(x.shape[1], 10, "lda", shrinkage=0.1)
    lda.update(x, y)
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1, priors=np.full(10, 0.1)).fit(x.numpy(), y.numpy())
    assert (lda(xt).argmax(1).numpy() == ref.predict(xt.numpy())).all()
    ncm = ClassGaussians(x.shape[1], 10, "ncm")
    ncm.update(x, y)
    nearest = torch.cdist(xt, torch.stack([x[y == c].mean(0) for c in range(10)])).argmin(1)
    assert torch.equal(ncm(xt).argmax(1), nearest)


def test_readout_rejects_labels_beyond_its_classes():
    with pytest.raises(ValueError, match="out of range"):
        ClassGaussians(3, 2).update(torch.zeros(1, 3), torch.tensor([2]))


# ------------------------------------------------------------------ order-invariance: any split


@pytest.mark.parametrize("name", ["slda", "ncm", "replay_free"])
def test_any_split_gives_the_same_final_model(digits, name):
    """One class per experience, uneven experiences and a shuffled order end in the same predictions."""
    cfg = load_strategy(name)
    cfg.hidden, cfg.epochs = [64], 1
    if name == "replay_free":
        cfg.learner_args["feature_experiences"] = 0  # features trained on the first experience differ by split
    preds = []
    for kwargs in ({"n_experiences": 5}, {"n_experiences": 10}, {"classes_per_experience": [3, 2, 2, 2, 1]},
                   {"n_experiences": 5, "class_order": [7, 3, 9, 0, 1, 8, 2, 6, 5, 4]}):
        torch.manual_seed(0)
        stream = make_stream(digits, **kwargs)
        strategy = build(cfg, stream.input_shape, stream.num_classes)
        for exp in stream.train_stream:
            strategy.train(exp)
        preds.append(predictions(strategy, digits.x_test))
    assert all(torch.equal(p, preds[0]) for p in preds[1:])
    assert (preds[0] == digits.y_test).float().mean() > 0.85


def test_uneven_experiences_are_validated(digits):
    stream = make_stream(digits, classes_per_experience=[3, 2, 2, 2, 1])
    assert [len(e.classes_in_this_experience) for e in stream.train_stream] == [3, 2, 2, 2, 1]
    with pytest.raises(DataError, match="summing to the 10 classes"):
        make_stream(digits, classes_per_experience=[3, 3])


# ------------------------------------------------------------------ DC features


def test_effective_dimensionality_by_hand():
    rank_one = torch.ones(6, 1) @ torch.randn(1, 4)
    assert effective_dimensionality(rank_one).item() == pytest.approx(1.0)
    assert effective_dimensionality(torch.eye(4) * 3).item() == pytest.approx(4.0)  # equal variance in 4 directions


def test_dc_blocks_learn_locally():
    torch.manual_seed(0)
    net = DCNet((1, 8, 8), [16, 12], DimensionalityCompression(), copies=4, proj_dim=8)
    net.local_loss(torch.rand(10, 1, 8, 8)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # the second block's loss alone gives the first block no gradient: blocks are detached
    net.zero_grad()
    x = torch.rand(10, 64)
    acts = net._activities(x)
    net.objective.loss((acts[1] @ net.proj1)[None]).backward()
    assert net.blocks[0].weight.grad is None
    assert net(torch.rand(3, 1, 8, 8)).shape == (3, 28)


def test_dc_lda_trains_features_only_in_its_first_experiences(digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    cfg = StrategyConfig(learner="dc_lda", hidden=[32], epochs=2, batch_size=64, learner_args={"feature_experiences": 1})
    strategy = build(cfg, stream.input_shape, stream.num_classes)
    first = [p.detach().clone() for p in strategy.model.features.parameters()]
    strategy.train(stream.train_stream[0])
    after_first = [p.detach().clone() for p in strategy.model.features.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(first, after_first))  # the first experience trains them
    means = strategy.model.readout.means.clone()
    for exp in stream.train_stream[1:]:
        strategy.train(exp)
    assert all(torch.equal(a, p) for a, p in zip(after_first, strategy.model.features.parameters()))  # then frozen
    assert torch.equal(strategy.model.readout.means[:2], means[:2])  # old classes' statistics never change
    assert int(strategy.model.readout.counts.sum()) == len(digits.y_train)  # every training image counted once
    assert (predictions(strategy, digits.x_test) == digits.y_test).float().mean() > 0.85
    # the readout's shrinkage is OAS by default (chosen on a validation split; docs/replay_free.md), set from the statistics
    readout = strategy.model.readout
    assert readout.shrinkage == "oas" and readout.shrinkage_value() == oas_shrinkage(readout.scatter, float(readout.counts.sum()))
    assert 0 < readout.shrinkage_value() < 1


def test_dc_lda_on_a_conv_net_trains_its_stages_only_in_the_first_experience(digits):
    """On a conv ``net`` the features are the last stage's map (seeds/003's conv DC blocks); its
    batch norms' statistics freeze with the weights."""
    torch.manual_seed(0)
    stream = make_stream(digits, 5)
    cfg = StrategyConfig(learner="dc_lda", net="vgg", hidden=[8, 16], epochs=2, batch_size=64, learner_args={"proj_dim": 8})
    strategy = build(cfg, stream.input_shape, stream.num_classes)
    features = strategy.model.features
    assert strategy.model.readout.means.shape[1] == features.feature_size == features(digits.x_test[:2]).shape[1]
    strategy.train(stream.train_stream[0])
    after_first = [t.detach().clone() for t in [*features.parameters(), *features.buffers()]]
    for exp in stream.train_stream[1:]:
        strategy.train(exp)
    assert all(torch.equal(a, t) for a, t in zip(after_first, [*features.parameters(), *features.buffers()]))
    assert (predictions(strategy, digits.x_test) == digits.y_test).float().mean() > 0.85


def test_dc_lda_refuses_bad_arguments(digits):
    for args, match in (({"feature_experiences": -1}, "feature_experiences"), ({"readout": "qda"}, "readout"),
                        ({"shrinkage": 2.0}, "shrinkage"), ({"copies": 1}, "copies"),
                        ({"feature_experiences": 0, "proj_dim": 32}, "so proj_dim .* would be ignored"),
                        ({"feature_experiences": 0, "copies": 5, "dropout": 0.1}, "so copies, dropout .* would be ignored")):
        with pytest.raises(ConfigError, match=match):
            build(StrategyConfig(learner="dc_lda", hidden=[8], learner_args=args), (1, 8, 8), 10)


# ------------------------------------------------------------------ the generative classifier


def test_genclass_learns_and_never_changes_an_old_class(digits):
    torch.manual_seed(0)
    stream = make_stream(digits, 2)
    cfg = StrategyConfig(learner="genclass", hidden=[32], epochs=15, batch_size=64, learner_args={"latent": 3})
    strategy = build(cfg, stream.input_shape, stream.num_classes)
    strategy.train(stream.train_stream[0])
    old = [p.detach().clone() for c in range(5) for p in strategy.model.vaes[c].parameters()]
    strategy.train(stream.train_stream[1])
    assert all(torch.equal(a, p) for a, p in zip(old, (p for c in range(5) for p in strategy.model.vaes[c].parameters())))
    acc = (predictions(strategy, digits.x_test) == digits.y_test).float().mean()
    assert acc > 0.7, acc


# ------------------------------------------------------------------ an Avalanche user's own script


@pytest.mark.parametrize("name", ["slda", "replay_free", "genclass"])
def test_learners_run_on_an_avalanche_benchmark(digits, name):
    """An Avalanche-built stream with a non-natural class order and the user's own evaluator:
    the logged stream accuracy equals the accuracy computed from the model."""
    torch.manual_seed(0)
    bench = class_incremental_benchmark(
        {"train": TensorDataset(digits.x_train, digits.y_train), "test": TensorDataset(digits.x_test, digits.y_test)},
        class_order=[9, 4, 0, 6, 1, 3, 2, 8, 7, 5], num_experiences=5,
    )
    cfg = load_strategy(name)
    cfg.hidden = [32] if name != "genclass" else [32, 32]
    cfg.epochs = min(cfg.epochs, 3)
    strategy = build(cfg, tuple(digits.x_train.shape[1:]), 10)
    for exp in bench.train_stream:
        strategy.train(exp)
    logged = strategy.eval(bench.test_stream)["Top1_Acc_Stream/eval_phase/test_stream"]
    torch.manual_seed(1)
    direct = (predictions(strategy, digits.x_test) == digits.y_test).float().mean().item()
    tolerance = 0.02 if name == "genclass" else 1e-6  # genclass samples its likelihood estimate
    assert abs(logged - direct) <= tolerance


def test_score_cross_entropy_is_finite_on_unseen_classes():
    """Issue 14, item 8: the -1e9 scores of inactive classes made the evaluation loss about 1e9."""
    from ffcl.strategies.ff_template import ScoreCrossEntropy

    neg = -1e9
    scores = torch.tensor([[2.0, 1.0, neg, neg], [2.0, 1.0, neg, neg], [neg, neg, neg, neg]])
    loss = ScoreCrossEntropy()
    seen = loss(scores[:1], torch.tensor([0]))
    assert seen == pytest.approx(torch.nn.functional.cross_entropy(scores[:1, :2], torch.tensor([0])))  # unchanged
    unseen = loss(scores[1:2], torch.tensor([3]))
    # the unseen class scores as the lowest seen one (1.0): -log(e^1 / (e^2 + e^1 + e^1 + e^1))
    assert unseen.item() == pytest.approx(-(1.0 - torch.logsumexp(torch.tensor([2.0, 1.0, 1.0, 1.0]), 0)).item(), rel=1e-5)
    assert loss(scores[2:], torch.tensor([1])).item() == pytest.approx(np.log(4), rel=1e-5)


@pytest.mark.parametrize("name", ["sffa_alloc", "replay_free", "genclass", "naive"])
def test_too_few_classes_is_one_clear_error(digits, name):
    """Issue 14, item 6: num_classes below the largest label gave a raw IndexError."""
    cfg = load_strategy(name)
    cfg.hidden = [40, 40] if name != "replay_free" else [40]
    stream = make_stream(digits, 2)
    strategy = build(cfg, stream.input_shape, 5)
    strategy.train(stream.train_stream[0])  # labels 0-4 fit
    with pytest.raises(DataError, match="built for 5 classes"):
        strategy.train(stream.train_stream[1])


def test_one_class_experiences_warn_for_contrastive_ff_learners(digits):
    """Issue 14, item 9: a one-class experience taught an FF learner almost nothing, silently."""
    stream = make_stream(digits, 10)
    cfg = load_strategy("sffa")
    cfg.hidden, cfg.epochs, cfg.learner_args["k"] = [20, 20], 1, 3
    strategy = build(cfg, stream.input_shape, 10)
    with pytest.warns(UserWarning, match="holds one class"):
        strategy.train(stream.train_stream[0])
    rf = load_strategy("replay_free")
    rf.hidden, rf.epochs = [20], 1
    learner = build(rf, stream.input_shape, 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learner.train(stream.train_stream[0])  # learns from one class: no such warning
    assert not [w for w in caught if "holds one class" in str(w.message)]


def test_classes_first_seen_mid_online_stream_give_the_same_model(digits):
    """Online mini-experiences (Avalanche's split_online_stream), shuffled so classes appear mid-stream."""
    from avalanche.benchmarks.scenarios.online import split_online_stream

    cfg = load_strategy("replay_free")
    cfg.hidden, cfg.learner_args["feature_experiences"] = [64], 0
    preds = []
    for online in (False, True):
        torch.manual_seed(0)
        stream = make_stream(digits, 5)
        strategy = build(cfg, stream.input_shape, stream.num_classes)
        exps = split_online_stream(stream.train_stream, experience_size=50, shuffle=True, seed=0) if online else stream.train_stream
        for exp in exps:
            strategy.train(exp)
        preds.append(predictions(strategy, digits.x_test))
    assert torch.equal(preds[0], preds[1])


def test_slda_on_a_torchscript_feature_extractor(digits, tmp_path):
    torch.manual_seed(0)
    extractor = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU()))
    path = tmp_path / "features.pt"
    torch.jit.save(extractor, str(path))
    stream = make_stream(digits, 2)
    strategy = build(StrategyConfig(learner="slda", learner_args={"feature_extractor": str(path)}), stream.input_shape, 10)
    assert strategy.model.readout.means.shape == (10, 32)
    for exp in stream.train_stream:
        strategy.train(exp)
    assert (predictions(strategy, digits.x_test) == digits.y_test).float().mean() > 0.8
    (tmp_path / "pickle.pt").write_bytes(b"not a TorchScript archive")
    with pytest.raises(ConfigError, match="TorchScript"):
        build(StrategyConfig(learner="slda", learner_args={"feature_extractor": str(tmp_path / "pickle.pt")}), stream.input_shape, 10)


def test_kept_bytes_are_reported(digits, make_config, run_dir):
    from ffcl.experiment import run_experiment

    cfg = make_config("split_digits", "replay_free", ["strategy.hidden=[50]", "scenario.epochs=1", "scenario.n_experiences=2"])
    metrics = run_experiment(cfg, run_dir, quiet=True)
    # a mean of 50 float64 and a count per class; the covariance and the DC block (+ its projection) shared
    assert metrics["kept_bytes"] == {"per_class": 51 * 8, "shared": 50 * 50 * 8 + (64 * 50 + 50 + 50 * 50) * 4}


def test_covariance_refresh_reuses_the_factor_for_that_many_samples():
    """refresh_every: during a statistics pass the covariance is factored again only after
    min(refresh_every, n0) more samples (n0: the samples it was factored from), while the class
    means (and new classes) are always current; on a refresh, and outside the pass, scores are exact."""
    from ffcl.readout import ClassGaussians

    g = torch.Generator().manual_seed(0)
    exact, lazy = ClassGaussians(6, 3), ClassGaussians(6, 3, refresh_every=250)
    lazy.reuse_factor = True
    probe = torch.randn(20, 6, generator=g)
    factored_at = []
    for step in range(8):
        x = torch.randn(100, 6, generator=g) * (1 + step)  # the covariance changes as the stream goes on
        y = torch.randint(0, 2 if step < 5 else 3, (100,), generator=g)
        exact.update(x, y)
        lazy.update(x, y)
        scores = lazy(probe)
        factored_at.append(lazy._solver[2])
        assert (scores[:, 2] > -1e8).all() == (step >= 5)  # a new class scores at once
        if factored_at[-1] == exact.counts.sum():
            assert torch.allclose(scores, exact(probe), rtol=1e-6, atol=1e-6)
        else:
            assert not torch.allclose(scores, exact(probe), rtol=1e-6, atol=1e-6)
    assert factored_at == [100, 200, 200, 400, 400, 400, 700, 700]
    lazy.reuse_factor = False  # outside a statistics pass: exact
    assert torch.allclose(lazy(probe), exact(probe), rtol=1e-6, atol=1e-6)


def test_a_run_on_a_torchscript_feature_extractor_checkpoints_and_resumes(tmp_path, make_config, monkeypatch):
    """A ScriptModule cannot be pickled: the checkpoint holds its TorchScript archive instead, so the
    run finishes, and a resumed run (trusted: the user's own) ends as an uninterrupted one."""
    from conftest import interrupt_at

    from ffcl.experiment import run_experiment

    extractor = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU()))
    torch.jit.save(extractor, str(tmp_path / "features.pt"))
    cfg = make_config("split_digits", "slda", [f'strategy.learner_args.feature_extractor="{tmp_path / "features.pt"}"'])
    full = run_experiment(cfg, tmp_path / "full", quiet=True)
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, tmp_path / "cut", quiet=True)
    assert run_experiment(None, tmp_path / "cut", resume=True, quiet=True)["accuracy_matrix"] == full["accuracy_matrix"]


def test_a_stream_learner_on_a_torchscript_feature_extractor_copies_and_loads(digits, tmp_path):
    import copy

    from ffcl import StreamLearner

    extractor = torch.jit.script(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU()))
    torch.jit.save(extractor, str(tmp_path / "features.pt"))
    learner = StreamLearner("slda", learner_args={"feature_extractor": str(tmp_path / "features.pt")})
    X, y = digits.x_train[:300].numpy(), digits.y_train[:300].numpy()
    learner.partial_fit(X, y, classes=list(range(10)))
    expected = learner.predict(digits.x_test.numpy())
    assert (copy.deepcopy(learner).predict(digits.x_test.numpy()) == expected).all()
    learner.save(tmp_path / "learner.pt")
    with pytest.raises(ConfigError, match="feature_extractor"):
        StreamLearner.load(tmp_path / "learner.pt")  # the file names a script: loaded only when named
    loaded = StreamLearner.load(tmp_path / "learner.pt", feature_extractor=str(tmp_path / "features.pt"))
    assert (loaded.predict(digits.x_test.numpy()) == expected).all()
