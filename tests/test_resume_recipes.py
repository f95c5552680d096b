"""Resume is exact for every shipped strategy recipe: a run interrupted after its first experience
and resumed from its checkpoint ends with the same accuracy matrix, bit for bit, as one that was
never interrupted (the RNG, optimiser, buffers and learner state all come back)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ffcl.config import list_recipes, load_strategy
from ffcl.data import loaders
from ffcl.experiment import run_experiment
from conftest import interrupt_at

# Two experiences of five classes, one epoch: enough for the second experience to depend on every
# piece of state the first one leaves behind, and fast enough to walk all recipes.
SHORT = ["scenario.n_experiences=2", "scenario.epochs=1"]


def short(name: str, tmp_path) -> list[str]:
    """Overrides that shorten a recipe's own training budget too, where it sets one; DGR's generator
    takes 28x28 images only, so it gets a small data set of those (written here)."""
    extra = [f"strategy.{key}=1" for key in ("epochs",) if getattr(load_strategy(name), key, None) is not None]
    if "components" in load_strategy(name).learner_args:  # random-feature widths: the state, not the width, is tested
        extra.append("strategy.learner_args.components=256")
    if name == "dgr":
        g = torch.Generator().manual_seed(0)
        y = torch.arange(4).repeat_interleave(20)
        x = (torch.rand(len(y), 1, 28, 28, generator=g) * 0.25 + y.view(-1, 1, 1, 1) / 4).numpy()  # in [0, 1)
        np.savez(tmp_path / "small28.npz", x=x, y=y.numpy(), x_test=x[::2], y_test=y[::2].numpy())
        extra.append(f'scenario.dataset="npz:{tmp_path / "small28.npz"}"')
    return SHORT + extra


class Interrupt(Exception):
    """Stands in for Ctrl-C (a KeyboardInterrupt would stop pytest)."""


@pytest.mark.parametrize("name", list_recipes("strategies"))
def test_resume_is_exact_for_every_recipe(name, tmp_path, make_config, monkeypatch):
    cfg = make_config("split_digits", name, short(name, tmp_path), seed=5)
    full = run_experiment(cfg, tmp_path / "full", quiet=True)

    with monkeypatch.context() as m:
        interrupt_at(m, 1, error=Interrupt)  # joint training: before its only checkpoint
        with pytest.raises(Interrupt):
            run_experiment(cfg, tmp_path / "cut", quiet=True)
    resumed = run_experiment(None, tmp_path / "cut", resume=True, quiet=True)
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]


def test_reading_a_dataset_the_slow_way_leaves_the_global_rng_alone():
    """A dataset that is not a plain tensor view (a resumed replay buffer, a transformed dataset) is
    read through a DataLoader; its iterator's seed must not come from the global RNG, or a resumed
    run would draw different minibatches from then on."""
    from avalanche.benchmarks.utils import AvalancheDataset

    class Items(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int):
            return torch.full((2,), float(i)), i, 0

    ds = AvalancheDataset([Items()])
    assert loaders._direct(ds) is None  # the slow path
    state = torch.get_rng_state()
    x, y, t = loaders.dataset_tensors(ds)
    assert torch.equal(torch.get_rng_state(), state)
    assert y.tolist() == [0, 1, 2, 3, 4] and x[3].tolist() == [3.0, 3.0]
