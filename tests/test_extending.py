"""docs/extending.md, run: your own objective, learner and plugin, registered and named in a
recipe, from a script and from `ffcl run` through the `ffcl.extensions` entry point (issue 16's
how-to on extending ffcl)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
import torch

import ffcl.objectives.base as objectives
import ffcl.strategies.registry as registry
from ffcl.cli import main

DOC = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text()


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """The page's module and recipe written out; registries restored afterwards."""
    module = re.search(r"```python\n# my_ffcl_extension.py\n(.*?)```", DOC, re.S).group(1)
    recipe = re.search(r"```toml\n# my_learner.toml\n(.*?)```", DOC, re.S).group(1)
    (tmp_path / "my_ffcl_extension.py").write_text(module)
    (tmp_path / "my_learner.toml").write_text(recipe)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_ffcl_extension", raising=False)
    for module_, name in ((registry, "LEARNERS"), (registry, "PLUGINS"), (objectives, "OBJECTIVES")):
        monkeypatch.setattr(module_, name, dict(getattr(module_, name)))
    monkeypatch.setattr(registry, "_loaded_extensions", set())
    return tmp_path


def test_from_a_script(extension):
    import my_ffcl_extension  # noqa: F401

    from ffcl.config import load_strategy
    from ffcl.data import load_dataset
    from ffcl.strategies import build_strategy

    digits = load_dataset("digits")
    strategy = build_strategy(load_strategy(str(extension / "my_learner.toml")), input_shape=(1, 8, 8), num_classes=10)
    assert any(type(p).__name__ == "ClipGradients" and p.max_norm == 5.0 for p in strategy.plugins)
    torch.manual_seed(0)
    from ffcl.data import make_stream

    strategy.train(make_stream(digits, 1).train_stream[0])
    with torch.no_grad():
        acc = (strategy.model(digits.x_test).argmax(1) == digits.y_test).float().mean().item()
    assert acc > 0.8, acc  # the pairwise objective learns


def test_from_ffcl_run_through_the_entry_point(extension, monkeypatch, capsys):
    eps = [importlib.metadata.EntryPoint(name="mine", value="my_ffcl_extension", group="ffcl.extensions")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "ffcl.extensions" else [])
    out = extension / "run"
    assert main(["run", "--scenario", "joint_digits", "--strategy", str(extension / "my_learner.toml"), "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["final_average_accuracy"] > 0.8 and "pairwise_ff" in registry.LEARNERS
    capsys.readouterr()
    broken = [importlib.metadata.EntryPoint(name="broken", value="no_such_module_anywhere", group="ffcl.extensions")]
    monkeypatch.setattr(registry, "entry_points", lambda group: broken)
    assert main(["run", "--scenario", "joint_digits", "--strategy", "naive", "--out", str(extension / "r2"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "extension 'broken'" in err and not (extension / "r2").exists()
