"""ffcl.StreamLearner and streams from Python iterables (issue 17, items 2 and 3)."""

from __future__ import annotations

import io
import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import check_estimator

from ffcl import StreamLearner
from ffcl.config import ConfigError
from ffcl.data import load_dataset


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return d.x_train.numpy(), d.y_train.numpy(), d.x_test.numpy(), d.y_test.numpy()


NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])


# scikit-learn's estimator checks, all of them, on a learner of each kind. check_classifiers_train
# wants 83% after `fit` on a small blob set, which a back-propagation MLP reaches in 20 passes,
# not in one (fit is one experience of `epochs` passes). The two replay_free failures, and why,
# are listed in docs/streaming.md (EXPECTED_FAILURES).
ESTIMATORS = {
    "sffa": dict(recipe="sffa", hidden=[64], learner_args={"k": 8}),
    "naive": dict(recipe="naive", hidden=[64], epochs=20),
    "slda": dict(recipe="slda"),
    "replay_free": dict(recipe="replay_free", hidden=[64]),
}
EXPECTED_FAILURES = {
    "replay_free": {
        "check_classifiers_train": "it standardises each sample over its own features (made for images): "
                                   "two-feature blobs keep only their sign",
        "check_methods_subset_invariance": "64 features of a two-feature input have a rank-2 covariance; the LDA "
                                           "scores reach 1e6 and float32 rounding that differs with the batch size "
                                           "moves near-tie probabilities",
    },
}

MACHINE_DEPENDENT = {"check_methods_subset_invariance"}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_sklearn_estimator_checks(name):
    expected = EXPECTED_FAILURES.get(name, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(StreamLearner(**ESTIMATORS[name]), on_fail=None, expected_failed_checks=expected)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results if r["status"] == "failed"}
    xfailed = {r["check_name"] for r in results if r["status"] == "xfail"}
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    # near-tie rounding passes or fails with the CPU's float kernels: that one may pass on some machines
    assert not failed and set(expected) - MACHINE_DEPENDENT <= xfailed <= set(expected)
    assert skipped <= {"check_array_api_input", "check_classifier_data_not_an_array", "check_dataframe_column_names_consistency",
                       "check_estimators_dtypes_pandas", "check_pandas_series"}  # optional packages not installed here


def test_partial_fit_grows_the_label_set_and_predicts_names(digits):
    """Labels the learner has never seen join classes_ mid-stream, as in `ffcl adapt`."""
    x, y, xt, yt = digits
    learner = StreamLearner("slda")
    first = y < 5
    for i in range(0, first.sum(), 64):
        learner.partial_fit(x[first][i : i + 64], NAMES[y[first][i : i + 64]])
    assert set(learner.classes_) == set(NAMES[:5])
    for i in range(0, (~first).sum(), 64):
        learner.partial_fit(x[~first][i : i + 64], NAMES[y[~first][i : i + 64]])
    assert set(learner.classes_) == set(NAMES) and learner.strategy_.model.max_classes >= 10
    assert learner.score(xt, NAMES[yt]) > 0.9
    proba = learner.predict_proba(xt[:5])
    assert proba.shape == (5, 10) and np.allclose(proba.sum(1), 1)
    assert (learner.classes_[proba.argmax(1)] == learner.predict(xt[:5])).all()


@pytest.mark.parametrize("recipe", ["sffa", "naive", "replay"])
def test_prequential_accuracy_is_test_then_train(digits, recipe):
    """Each batch is predicted by the learner as it stands before that batch."""
    x, y, _, _ = digits
    learner = StreamLearner(recipe, hidden=[64], max_classes=10)
    learner.partial_fit(x[:32], y[:32])
    correct, seen = learner.prequential_.correct, learner.prequential_.samples
    for i in range(32, 640, 32):
        correct += int((learner.predict(x[i : i + 32]) == y[i : i + 32]).sum())
        seen += len(y[i : i + 32])
        learner.partial_fit(x[i : i + 32], y[i : i + 32])
    assert learner.prequential_.samples == seen == 640 and learner.prequential_.correct == correct
    assert learner.prequential_accuracy_ == pytest.approx(correct / seen)


def test_numpy_tensors_and_uint8_images_give_the_same_learner(digits):
    x, y, xt, _ = digits
    a = StreamLearner("sffa", hidden=[32], learner_args={"k": 4}).partial_fit(x[:200], y[:200])
    b = StreamLearner("sffa", hidden=[32], learner_args={"k": 4}).partial_fit(torch.tensor(x[:200]), torch.tensor(y[:200]))
    assert np.array_equal(a.predict(xt), b.predict(torch.tensor(xt)))
    flat = StreamLearner("slda").partial_fit(x[:300].reshape(300, -1), y[:300])  # tabular [N, D] data
    assert flat.n_features_in_ == 64 and flat.score(xt.reshape(len(xt), -1), digits[3]) > 0.5
    u8 = StreamLearner("slda").partial_fit((x[:300] * 255).round().astype(np.uint8), y[:300])
    assert u8.score((xt * 255).round().astype(np.uint8), digits[3]) > 0.5


def test_save_load_and_pickle_keep_the_learner(digits, tmp_path):
    x, y, xt, _ = digits
    learner = StreamLearner("sffa_alloc", hidden=[96], max_classes=10)
    for i in range(0, 600, 50):
        learner.partial_fit(x[i : i + 50], NAMES[y[i : i + 50]])
    learner.save(tmp_path / "learner.pt")
    for other in (StreamLearner.load(tmp_path / "learner.pt"), pickle.loads(pickle.dumps(learner))):
        assert np.array_equal(other.predict(xt), learner.predict(xt)) and list(other.classes_) == list(learner.classes_)
        assert other.get_params() == learner.get_params() and other.prequential_accuracy_ == learner.prequential_accuracy_
        other.partial_fit(x[600:700], NAMES[y[600:700]])  # and it keeps learning
    unfitted = clone(learner)
    assert not hasattr(unfitted, "strategy_") and unfitted.get_params() == learner.get_params()


def test_load_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"format": "ffcl-learner/1", "extra": Evil()}, buf, pickle_module=pickle)
    buf.seek(0)
    with pytest.raises(ConfigError, match="not an ffcl learner file"):
        StreamLearner.load(buf)
    assert not marker.exists()


def test_bad_input_is_one_clear_error(digits):
    x, y, _, _ = digits
    learner = StreamLearner("slda").partial_fit(x[:100], y[:100])
    with pytest.raises(ValueError, match="shape"):
        learner.partial_fit(x[:10, :, :4], y[:10])
    with pytest.raises(ValueError, match="NaN"):
        learner.partial_fit(np.full_like(x[:10], np.nan), y[:10])
    with pytest.raises(ValueError, match="requires y"):
        StreamLearner().partial_fit(x[:10], None)
    with pytest.raises(ConfigError, match="unknown|no such|not found"):
        StreamLearner("no_such_recipe").partial_fit(x[:10], y[:10])


def test_learn_stream_from_a_generator_reports_progress(digits, capsys):
    x, y, _, _ = digits

    def sensor():  # a live source: batches are produced one at a time
        for i in range(0, 960, 32):
            yield x[i : i + 32], y[i : i + 32]

    learner = StreamLearner("slda").learn_stream(sensor(), report_every=320)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["320", "640", "960"] and "prequential accuracy" in lines[0]
    assert learner.prequential_.samples == 960


def test_an_avalanche_strategy_learns_from_an_iterable(digits):
    """stream_from_batches: any iterable of (x, y) batches as an Avalanche stream, with the
    prequential metric in the user's own evaluator."""
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    from ffcl.config import load_strategy
    from ffcl.data.iterable import stream_from_batches
    from ffcl.metrics import PrequentialAccuracy
    from ffcl.strategies import build_strategy

    x, y, _, _ = digits
    read = []

    def source():
        for i in range(0, 640, 32):
            read.append(i)
            yield x[i : i + 32], y[i : i + 32]

    metric = PrequentialAccuracy(window=320, every=320)
    cfg = load_strategy("replay")
    cfg.hidden, cfg.batch_size = [64], 32
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10,
                              evaluator=EvaluationPlugin(metric, accuracy_metrics(epoch=True), loggers=[]))
    for i, exp in enumerate(stream_from_batches(source())):
        assert len(read) == i + 1  # nothing is read ahead
        strategy.train(exp)
    assert metric.samples == 640 and [p["samples"] for p in metric.curve] == [320, 640]


def test_a_recipe_with_loggers_is_refused(tmp_path):
    """A recipe's loggers write into a run directory; a StreamLearner has none, so it refuses them
    instead of silently logging nowhere."""
    (tmp_path / "logged.toml").write_text('extends = "ncm"\nloggers = ["csv"]\n')
    learner = StreamLearner(str(tmp_path / "logged.toml"))
    X, y = np.random.default_rng(0).random((6, 4)).astype(np.float32), np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ConfigError, match="loggers"):
        learner.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(learner, "classes_")
