"""A TorchScript ``feature_extractor`` named inside a received ``learner.pt`` is not loaded by the
weights-only readers (issue 26, item 1): not by ``ffcl adapt --weights-only``, ``load_learner``
or ``read_learner``, unless the user names it (``feature_extractor=PATH``, ``--trust-checkpoint``)."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import torch

from ffcl.checkpoint import load_learner
from ffcl.cli import main
from ffcl.config import ConfigError
from ffcl.experiment import run_experiment
from ffcl.learner_file import UntrustedScript, load_record, read_learner
from ffcl.rundir import RunError, write_config
from test_adapt import new_classes_npz

SMALL = ["scenario.n_experiences=2", "scenario.epochs=1"]

HOSTILE = '''
import torch


class Marker(torch.nn.Module):
    """Its forward creates the file ``marker`` through a torch operator (torch.from_file)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.from_file(self.marker, shared=True, size=1, dtype=torch.uint8)
        return x.flatten(1) + t.sum() * 0
'''


def _hostile_script(folder, marker):
    """A TorchScript module saved in ``folder`` whose forward writes ``marker`` (scripted from a
    source file: torch.jit.script reads the class's source)."""
    import importlib.util

    source = folder / "marker_module.py"
    source.write_text(textwrap.dedent(HOSTILE))
    spec = importlib.util.spec_from_file_location("marker_module", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = folder / "features.pt"
    torch.jit.save(torch.jit.script(module.Marker(str(marker))), str(path))
    return path


@pytest.fixture(scope="module")
def slda_run(tmp_path_factory):
    """A finished slda run on Split-Digits, made here, whose learner.pt and config.json (recorded
    as written by ffcl here) name a harmless TorchScript extractor (a Flatten, as the raw-pixel
    slda uses, so its weights stand)."""
    from conftest import build_run_config

    base = tmp_path_factory.mktemp("slda")
    extractor = base / "flatten.pt"
    torch.jit.save(torch.jit.script(torch.nn.Flatten()), str(extractor))
    run_experiment(build_run_config("split_digits", "slda", SMALL), base / "run", quiet=True)
    _name(base / "run", extractor, own=True)
    return base / "run", extractor


def _name(run, script, own=False):
    """Make ``run``'s learner.pt and config.json name the TorchScript ``script``; ``own``: its
    config.json recorded as written by ffcl on this machine (ffcl.trust)."""
    record = torch.load(run / "learner.pt", weights_only=True)
    record["strategy"]["learner_args"]["feature_extractor"] = str(script)
    torch.save(record, run / "learner.pt")
    config = json.loads((run / "config.json").read_text())
    config["strategy"]["learner_args"]["feature_extractor"] = str(script)
    if own:
        write_config(run / "config.json", config)
    else:
        (run / "config.json").write_text(json.dumps(config, indent=2))


def _received(run, where, script):
    """A copy of ``run`` as someone else would send it: its learner.pt and config.json name ``script``."""
    shutil.copytree(run, where)
    _name(where, script)
    return where


def test_the_crafted_module_does_write_its_marker(tmp_path):
    marker = tmp_path / "pwned"
    module = torch.jit.load(str(_hostile_script(tmp_path, marker)))
    assert not marker.exists()
    module(torch.zeros(1, 1, 8, 8))
    assert marker.exists()  # so the tests below would see it run


def test_weights_only_adapt_does_not_load_a_received_script(slda_run, tmp_path, capsys):
    marker = tmp_path / "pwned"
    received = _received(slda_run[0], tmp_path / "received", _hostile_script(tmp_path, marker))
    data = new_classes_npz(tmp_path / "new.npz")
    assert main(["adapt", str(received), "--weights-only", "--data", data, "--out", str(tmp_path / "a"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "names a TorchScript feature_extractor" in err and "--trust-checkpoint" in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "a").exists()


def test_the_readers_do_not_load_a_named_script(slda_run, tmp_path):
    marker = tmp_path / "pwned"
    script = _hostile_script(tmp_path, marker)
    received = _received(slda_run[0], tmp_path / "received", script)
    for read in (lambda: load_learner(received, weights_only=True), lambda: read_learner(received / "learner.pt"),
                 lambda: load_record(received / "learner.pt")):
        with pytest.raises(UntrustedScript, match="feature_extractor=PATH") as e:
            read()
        assert e.value.path == str(script) and len(str(e.value).splitlines()) == 1
    assert not marker.exists()
    read_learner(received / "learner.pt", feature_extractor=script)  # named by the caller: loaded, and it runs
    assert marker.exists()


def test_a_named_extractor_replaces_the_recorded_path(slda_run, tmp_path):
    from ffcl.data import load_dataset

    run, extractor = slda_run
    received = _received(run, tmp_path / "received", tmp_path / "elsewhere" / "missing.pt")
    own = load_learner(received, weights_only=True, feature_extractor=extractor)
    reference = load_learner(run)  # the run's own checkpoint (written here, so trusted): raw pixels through nn.Flatten
    x = load_dataset("digits").x_test[:64]
    with torch.no_grad():
        assert torch.equal(own.model.eval()(x), reference.model.eval()(x))


def test_an_extractor_given_for_a_file_that_names_none_is_refused(tmp_path, slda_run):
    from conftest import build_run_config

    run_experiment(build_run_config("split_digits", "ncm", SMALL), tmp_path / "ncm", quiet=True)
    with pytest.raises(ConfigError, match="names no TorchScript feature_extractor"):
        read_learner(tmp_path / "ncm" / "learner.pt", feature_extractor=slda_run[1])


def test_adapt_loads_the_script_of_an_own_run_or_with_trust(slda_run, tmp_path):
    from ffcl.adapt import _learner_script

    run, extractor = slda_run
    assert _learner_script(run, trusted=False) == str(extractor)  # ffcl wrote the run here, and its config.json names the same file
    theirs = shutil.copy(extractor, tmp_path / "theirs.pt")
    received = _received(run, tmp_path / "received", theirs)
    with pytest.raises(RunError, match="--trust-checkpoint"):
        _learner_script(received, trusted=False)
    assert _learner_script(received, trusted=True) == str(theirs)
    own_config = _received(run, tmp_path / "edited", theirs)  # a learner.pt that names another file than the run's own config
    shutil.copy(run / "config.json", own_config / "config.json")
    with pytest.raises(RunError, match="--trust-checkpoint"):
        _learner_script(own_config, trusted=False)
