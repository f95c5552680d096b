"""Tests for RanDumb (random Fourier features + streaming LDA with OAS shrinkage) and the OAS
shrinkage of the streaming readout."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from sklearn.covariance import OAS
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.kernel_approximation import RBFSampler

from ffcl.config import ConfigError, load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.readout import ClassGaussians
from ffcl.strategies import build_strategy
from ffcl.strategies.randumb import RandomFourierFeatures


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def build(cfg, stream):
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    return build_strategy(cfg, input_shape=stream.input_shape, num_classes=stream.num_classes, evaluator=evaluator)


def randumb_config(components: int):
    cfg = load_strategy("randumb")
    cfg.learner_args = {**cfg.learner_args, "components": components}
    return cfg


def test_streaming_oas_equals_sklearn_oas_on_the_pooled_within_class_data():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (400,), generator=g)
    f = torch.randn(400, 30, generator=g, dtype=torch.float64) @ torch.randn(30, 30, generator=g, dtype=torch.float64) + 3.0 * y[:, None]
    readout = ClassGaussians(30, 4, "lda", shrinkage="oas")
    for idx in torch.randperm(400, generator=g).split(57):  # uneven batches, classes interleaved
        readout.update(f[idx], y[idx])
    means = torch.stack([f[y == c].mean(0) for c in range(4)])
    ref = OAS().fit((f - means[y]).numpy())  # the pooled within-class data
    assert readout.shrinkage_value() == pytest.approx(ref.shrinkage_, rel=1e-10)
    assert 0 < ref.shrinkage_ < 1
    # the same covariance up to the scale (N - C) / N, which does not change LDA's decisions
    assert np.allclose(readout.covariance().numpy() * (400 - 4) / 400, ref.covariance_)


def test_oas_is_the_default_where_chosen_and_refuses_unknown_names():
    with pytest.raises(ValueError, match="oas"):
        ClassGaussians(5, 2, "lda", shrinkage="ledoit")
    cfg = load_strategy("slda")
    cfg.learner_args = {"shrinkage": "ledoit"}
    with pytest.raises(ConfigError, match="number in \\[0, 1\\] or \"oas\""):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)


def test_feature_map_is_rbf_sampler_on_normalised_pixels(digits):
    x = digits.x_train[:500]
    rff = RandomFourierFeatures((1, 8, 8), 300, "scale", seed=3)
    rff.fit_input(x)
    xn = x.flatten(1).double().numpy()
    xn = (xn - xn.mean()) / xn.std()
    ref = RBFSampler(gamma="scale", n_components=300).fit(xn)  # gamma = 1 / (64 * var) = 1/64
    assert ref._gamma == pytest.approx(1 / 64, rel=1e-6)
    ref.random_weights_ = np.sqrt(2 * ref._gamma) * rff.weight.double().numpy()  # the same draws of W and b
    ref.random_offset_ = rff.offset.double().numpy()
    z = rff(digits.x_test).double().numpy()
    assert np.allclose(z, ref.transform((digits.x_test.flatten(1).double().numpy() - x.mean().item()) / x.std(unbiased=False).item()), atol=1e-4)


def test_randumb_streams_to_the_sklearn_reference_and_to_one_fit(digits):
    stream = make_stream(digits, n_experiences=5, seed=0)
    strategy = build(randumb_config(300), stream)
    for exp in stream.train_stream:
        strategy.train(exp)
    model = strategy.model.eval()
    with torch.no_grad():
        z = model.features(digits.x_train).double()
        zt = model.features(digits.x_test).double()
        pred = model(digits.x_test).argmax(1).numpy()
    # the map was fitted on the first experience's pixels and then fixed
    first = next(iter(stream.train_stream)).dataset
    first_x = torch.stack([first[i][0] for i in range(len(first))])
    assert model.features.input_stats[0].item() == pytest.approx(first_x.mean().item(), rel=1e-5)
    # fitting once on all the features gives the same model as streaming them over 5 experiences
    once = ClassGaussians(300, 10, "lda", shrinkage="oas")
    once.update(z, digits.y_train)
    assert np.array_equal(once(zt).argmax(1).numpy(), pred)
    # scikit-learn: OAS on the pooled within-class features, then LDA's lsqr solution with equal priors
    y = digits.y_train.numpy()
    zn, ztn = z.numpy(), zt.numpy()
    means = np.stack([zn[y == c].mean(0) for c in range(10)])
    cov = OAS().fit(zn - means[y]).covariance_
    coef = np.linalg.lstsq(cov, means.T, rcond=None)[0].T
    ref = np.argmax(ztn @ coef.T - 0.5 * np.sum(coef * means, 1), 1)
    assert np.array_equal(ref, pred)
    # the authors' estimator (per-class OAS covariances averaged by the class priors) predicts almost the same
    authors = LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=OAS()).fit(zn, y).predict(ztn)
    assert (authors == pred).mean() > 0.98
    assert (pred == digits.y_test.numpy()).mean() > 0.95


def test_randumb_recipes_load_and_the_recipe_runs_on_split_digits(digits):
    wide = load_strategy("randumb_wide")
    assert wide.learner == "randumb" and wide.learner_args["components"] > load_strategy("randumb").learner_args["components"] == 4000
    stream = make_stream(digits, n_experiences=5, seed=1)
    strategy = build(randumb_config(1000), stream)
    for exp in stream.train_stream:
        strategy.train(exp)
    acc = strategy.eval(stream.test_stream)
    assert next(v for k, v in acc.items() if k.startswith("Top1_Acc_Stream")) > 0.95
    assert strategy.model.kept_bytes()["shared"] >= 1000 * 1000 * 8  # the covariance


@pytest.mark.parametrize("args, match", [({"gamma": -1.0}, "gamma must be a positive number"),
                                         ({"gamma": "auto"}, "gamma must be a positive number"),
                                         ({"components": 0}, "components must be >= 1"),
                                         ({"shrinkage": 2.0}, "shrinkage must lie in")])
def test_randumb_bad_arguments_are_one_line_errors(args, match):
    cfg = load_strategy("randumb")
    cfg.learner_args = {**cfg.learner_args, **args}
    with pytest.raises(ConfigError, match=match):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)


def test_constant_first_experience_is_a_clear_error():
    rff = RandomFourierFeatures((4,), 10)
    with pytest.raises(ValueError, match="cannot be normalised"):
        rff.fit_input(torch.ones(5, 4))
