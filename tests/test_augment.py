"""The shift augmentation plugin: whole-pixel translations of each training image."""

import pytest
import torch

from ffcl.config import ConfigError
from ffcl.experiment import run_experiment
from ffcl.strategies.augment import random_shift


def test_each_image_is_translated_by_at_most_max_shift():
    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 4:8, 5:7] = torch.rand(64, 1, 4, 2) + 0.5  # a blob away from the border
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    torch.testing.assert_close(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing falls off
    offsets = set()
    for xi, yi in zip(x, y):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(torch.roll(xi, (dy, dx), dims=(1, 2)), yi)]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets vary from image to image


def test_shift_plugin_trains_and_validates(tmp_path, make_config):
    cfg = make_config("split_digits", "sffa", ["strategy.hidden=[40, 40]", "scenario.epochs=2", "scenario.n_experiences=2",
                                               "strategy.plugins.shift.max_shift=1"])
    metrics = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert metrics["plasticity"] > 0.5
    with pytest.raises(ConfigError, match="max_shift"):
        run_experiment(make_config("split_digits", "naive", ["strategy.plugins.shift.max_shift=0"]), tmp_path / "bad", quiet=True)
