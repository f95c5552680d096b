"""learner.pt (issue 14, item 10): a learner that is safe to share, read without executing code,
predicting exactly as the run's own checkpoint."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch

from ffcl.adapt import adapt_run
from ffcl.cli import main
from ffcl.config import ConfigError
from ffcl.data import load_dataset
from ffcl.experiment import load_learner, run_experiment
from ffcl.learner_file import read_learner
from ffcl.trust import UntrustedCheckpoint

from test_adapt import new_classes_npz

RECIPES = {  # one of each kind of model state
    "sffa_alloc": ["strategy.hidden=[96]", "strategy.plugins.allocation.max_classes=12"],  # codes, frozen classes, owners
    "df": ["strategy.hidden=[32, 32]"],
    "replay": ["strategy.hidden=[32]", "strategy.plugins.replay.mem_size=50"],  # a back-propagation MLP
    "replay_free": ["strategy.hidden=[64]"],  # features + class statistics + trained-features counter
    "genclass": ["strategy.hidden=[32]", "strategy.learner_args.importance_samples=2"],  # one VAE per class
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from conftest import build_run_config

    root = tmp_path_factory.mktemp("runs")
    for name, overrides in RECIPES.items():
        cfg = build_run_config("split_digits", name, overrides + ["scenario.n_experiences=2", "scenario.epochs=1"])
        run_experiment(cfg, root / name, quiet=True)
    return root


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_learner_file_predicts_as_the_checkpoint(runs, recipe):
    x = load_dataset("digits").x_test
    whole, shared = load_learner(runs / recipe), load_learner(runs / recipe, weights_only=True)
    for s in (whole, shared):
        s.model.eval()
    torch.manual_seed(0)
    want = whole.model(x)
    torch.manual_seed(0)
    got = shared.model(x)
    assert torch.equal(got.argmax(1), want.argmax(1)) and torch.allclose(got, want)
    assert getattr(shared, "features_trained", None) == getattr(whole, "features_trained", None)


def test_learner_file_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "learner.pt"
    torch.save({"format": "ffcl-learner/1", "state": Evil()}, path, pickle_module=pickle)
    with pytest.raises(ConfigError, match="not an ffcl learner file"):
        read_learner(path)
    assert not marker.exists()
    path.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not an ffcl learner file"):
        read_learner(path)


def test_adapt_a_received_run_from_its_learner_file(runs, tmp_path, monkeypatch, capsys):
    """A run directory from someone else: its checkpoint is refused, its learner.pt is used."""
    received = tmp_path / "received"
    shutil.copytree(runs / "sffa_alloc", received)
    monkeypatch.setenv("FFCL_TRUST_FILE", str(tmp_path / "empty_registry.txt"))
    data = new_classes_npz(tmp_path / "new.npz")
    with pytest.raises(UntrustedCheckpoint, match="--weights-only"):
        adapt_run(received, data, tmp_path / "refused", quiet=True)
    assert not (tmp_path / "refused").exists()
    before = load_learner(received, weights_only=True).model
    assert main(["adapt", str(received), "--data", data, "--out", str(tmp_path / "a"), "--weights-only", "--quiet"]) == 0
    assert "new classes {'flip0': 10, 'flip1': 11}" in capsys.readouterr().out
    after = load_learner(tmp_path / "a", weights_only=True)
    assert after.ffcl_class_names[10:] == ("flip0", "flip1")
    for b0, b1 in zip(before.blocks, after.model.blocks):  # neuron allocation kept the old classes' neurons frozen
        old = (b0.owner >= 0) & (b0.owner < 10)
        assert old.any() and torch.equal(b1.owner[old], b0.owner[old])
        assert torch.equal(b1.inp[:, old], b0.inp[:, old]) and torch.equal(b1.bias[old], b0.bias[old])
        assert not torch.equal(b1.inp, b0.inp)  # the new classes' neurons learnt
