"""Tests for ffcl.data.streams.make_stream on the embedded digits and on synthetic data."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from ffcl.data import DataError, load_dataset, make_stream


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def blobs():
    # 6 classes, 23 training samples each: experiences whose sizes are not multiples of the online batch
    return load_dataset("synthetic", n_classes=6, n_train_per_class=23, n_test_per_class=5, seed=1)


def labels(exp) -> list[int]:
    return [int(exp.dataset[i][1]) for i in range(len(exp.dataset))]


def samples(exp) -> Counter:
    """Each sample of an experience as a hashable (pixels, label) key."""
    return Counter((tuple(exp.dataset[i][0].flatten().tolist()), int(exp.dataset[i][1])) for i in range(len(exp.dataset)))


def class_counts(y: torch.Tensor, classes: list[int]) -> int:
    return int(sum((y == c).sum() for c in classes))


# --------------------------------------------------------------------------- class-incremental


def test_split_digits(digits):
    s = make_stream(digits, 5)
    assert s.classes_per_experience == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert s.n_experiences == 5 and s.num_classes == 10 and s.input_shape == (1, 8, 8) and not s.online
    train, test = list(s.train_stream), list(s.test_stream)
    assert len(train) == len(test) == 5
    for i, (tr, te) in enumerate(zip(train, test)):
        classes = s.classes_per_experience[i]
        assert sorted(tr.classes_in_this_experience) == sorted(te.classes_in_this_experience) == classes
        assert set(labels(tr)) == set(classes) and set(labels(te)) == set(classes)
        assert len(tr.dataset) == class_counts(digits.y_train, classes)
        assert len(te.dataset) == class_counts(digits.y_test, classes)
    assert sum(len(e.dataset) for e in train) == len(digits.y_train)
    assert sum(len(e.dataset) for e in test) == len(digits.y_test)


def test_samples_are_the_data_sets(blobs):
    s = make_stream(blobs, 3)
    assert s.classes_per_experience == [[0, 1], [2, 3], [4, 5]]
    seen = sum((samples(e) for e in s.train_stream), Counter())
    expected = Counter((tuple(x.flatten().tolist()), int(y)) for x, y in zip(blobs.x_train, blobs.y_train))
    assert seen == expected


def test_one_class_per_experience(blobs):
    s = make_stream(blobs, 6)
    assert s.classes_per_experience == [[c] for c in range(6)]
    assert [len(e.dataset) for e in s.train_stream] == [23] * 6
    assert [len(e.dataset) for e in s.test_stream] == [5] * 6


def test_uneven_split_keeps_every_class(digits):
    s = make_stream(digits, 3)
    assert sorted(c for e in s.classes_per_experience for c in e) == list(range(10))
    assert sum(len(e.dataset) for e in s.train_stream) == len(digits.y_train)


def test_fixed_class_order(digits):
    order = [3, 7, 1, 0, 9, 2, 8, 4, 6, 5]
    s = make_stream(digits, 5, class_order=order)
    assert s.classes_per_experience == [sorted(order[k : k + 2]) for k in range(0, 10, 2)]
    for exp, classes in zip(s.train_stream, s.classes_per_experience):
        assert set(labels(exp)) == set(classes)
    reverse = make_stream(digits, 2, class_order=list(range(9, -1, -1)))
    assert reverse.classes_per_experience == [[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]]


def test_class_order_wins_over_seed(digits):
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    a = make_stream(digits, 5, class_order=order, seed=0)
    b = make_stream(digits, 5, class_order=order, seed=5)
    assert a.classes_per_experience == b.classes_per_experience == [[8, 9], [6, 7], [4, 5], [2, 3], [0, 1]]


def test_shuffle_classes_is_seeded(digits):
    a = make_stream(digits, 5, shuffle_classes=True, seed=1)
    b = make_stream(digits, 5, shuffle_classes=True, seed=1)
    c = make_stream(digits, 5, shuffle_classes=True, seed=2)
    assert a.classes_per_experience == b.classes_per_experience
    assert a.classes_per_experience != c.classes_per_experience
    for s in (a, c):
        assert sorted(x for e in s.classes_per_experience for x in e) == list(range(10))
        assert all(len(e) == 2 for e in s.classes_per_experience)
    # the shuffle is the one seeded generator's permutation, in groups of two
    order = torch.randperm(10, generator=torch.Generator().manual_seed(2)).tolist()
    assert c.classes_per_experience == [sorted(order[k : k + 2]) for k in range(0, 10, 2)]
    # without shuffle_classes the seed does not change the order
    assert make_stream(digits, 5, seed=3).classes_per_experience == make_stream(digits, 5).classes_per_experience


def test_joint_stream(digits):
    s = make_stream(digits, 1)
    assert s.n_experiences == 1 and s.classes_per_experience == [list(range(10))]
    (train,) = list(s.train_stream)
    (test,) = list(s.test_stream)
    assert len(train.dataset) == len(digits.y_train) and len(test.dataset) == len(digits.y_test)


# --------------------------------------------------------------------------- online


def test_online_stream(blobs):
    s = make_stream(blobs, 3, online=True, online_experience_size=10, seed=0)
    assert s.online and s.n_experiences == 3
    assert len(list(s.test_stream)) == 3  # the test stream stays per experience
    offline = list(make_stream(blobs, 3).train_stream)
    minis = list(s.train_stream)
    origins = [e.origin_experience.current_experience for e in minis]
    assert origins == sorted(origins) and set(origins) == {0, 1, 2}  # in order, contiguous
    for k, exp in enumerate(offline):
        group = [m for m, o in zip(minis, origins) if o == k]
        n = len(exp.dataset)  # 46 = 4 x 10 + 6
        assert len(group) == math.ceil(n / 10)
        assert [len(m.dataset) for m in group] == [10] * (n // 10) + ([n % 10] if n % 10 else [])
        assert all(set(labels(m)) <= set(s.classes_per_experience[k]) for m in group)
        # each sample of the experience exactly once
        assert sum((samples(m) for m in group), Counter()) == samples(exp)


def test_online_digits_sizes(digits):
    s = make_stream(digits, 5, online=True, online_experience_size=32)
    minis = list(s.train_stream)
    assert sum(len(m.dataset) for m in minis) == len(digits.y_train)
    assert max(len(m.dataset) for m in minis) == 32
    per_origin = Counter(m.origin_experience.current_experience for m in minis)
    for k, classes in enumerate(s.classes_per_experience):
        assert per_origin[k] == math.ceil(class_counts(digits.y_train, classes) / 32)


def test_online_order_is_shuffled_by_the_seed(blobs):
    def order(seed):
        return [tuple(m.dataset[i][0].flatten().tolist()) for m in make_stream(
            blobs, 3, online=True, online_experience_size=10, seed=seed).train_stream for i in range(len(m.dataset))]

    offline = [tuple(e.dataset[i][0].flatten().tolist()) for e in make_stream(blobs, 3).train_stream
               for i in range(len(e.dataset))]
    assert order(0) == order(0)
    assert order(0) != order(1)
    assert order(0) != offline and sorted(order(0)) == sorted(offline)


# --------------------------------------------------------------------------- errors and RNG


@pytest.mark.parametrize("n", [0, -1, 11])
def test_bad_number_of_experiences(digits, n):
    with pytest.raises(DataError, match="n_experiences"):
        make_stream(digits, n)


@pytest.mark.parametrize(
    "order",
    [[0, 1, 2], list(range(11)), [0, 0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
)
def test_bad_class_order(digits, order):
    with pytest.raises(DataError, match="class_order"):
        make_stream(digits, 5, class_order=order)


def test_synthetic_too_many_experiences(blobs):
    with pytest.raises(DataError, match="6 classes"):
        make_stream(blobs, 7)


@pytest.mark.parametrize(
    "kwargs", [{}, {"shuffle_classes": True, "seed": 4}, {"online": True, "online_experience_size": 10}, {"class_order": list(range(9, -1, -1))}]
)
def test_global_rng_untouched(digits, kwargs):
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    s = make_stream(digits, 5, **kwargs)
    assert torch.equal(torch.random.get_rng_state(), before)
    list(s.train_stream)
    assert torch.equal(torch.random.get_rng_state(), before)


# --------------------------------------------------------------------------- drift


def test_drift_stream_rotates_more_each_experience(digits):
    from ffcl.data.streams import make_drift_stream

    s = make_drift_stream(digits, 3, drift="rotate", strength=90.0, seed=0)
    assert s.n_experiences == 3 and s.classes_per_experience == [list(range(10))] * 3
    train = list(s.train_stream)
    assert sum(len(e.dataset) for e in train) == len(digits.y_train)  # each sample arrives once
    firsts = [e.dataset[0][0] for e in s.test_stream]  # the same test image under each shift
    assert torch.equal(firsts[0], digits.x_test[0])
    assert torch.allclose(firsts[2], torch.rot90(digits.x_test[0], 1, dims=(1, 2)), atol=1e-5)  # 90 degrees
    assert not torch.allclose(firsts[1], firsts[0]) and not torch.allclose(firsts[1], firsts[2])
    assert all(set(labels(e)) == set(range(10)) for e in train)


def test_noise_drift_and_bad_settings(digits):
    from ffcl.data import DataError
    from ffcl.data.streams import make_drift_stream, shift

    s = make_drift_stream(digits, 2, drift="noise", strength=0.3)
    x0, x1 = (e.dataset[0][0] for e in s.test_stream)
    assert torch.equal(x0, digits.x_test[0]) and 0.1 < (x1 - x0).std() < 0.35 and 0 <= x1.min() and x1.max() <= 1
    with pytest.raises(DataError, match="n_experiences >= 2"):
        make_drift_stream(digits, 1)
    with pytest.raises(DataError, match="rotate"):
        shift(digits.x_test[:2], "blur", 1.0)


@pytest.mark.parametrize("drop", ["train", "test"])
def test_classes_missing_from_one_split_are_one_clear_error(drop):
    """Issue 14, item 15: test labels the training set lacks (or the reverse) say so, not Avalanche's ValueError."""
    d = load_dataset("synthetic", n_classes=4)
    keep_train, keep_test = d.y_train < (3 if drop == "train" else 4), d.y_test < (3 if drop == "test" else 4)
    data = type(d)(d.name, d.x_train[keep_train], d.y_train[keep_train], d.x_test[keep_test], d.y_test[keep_test], d.class_names)
    with pytest.raises(DataError, match="only in the test set" if drop == "train" else "have no test images"):
        make_stream(data, 2)
