"""Checkpoints from elsewhere are never unpickled silently (issue 14, item 10)."""

from __future__ import annotations

import os
import shutil

import pytest

from ffcl.cli import main
from ffcl.experiment import run_experiment


def _interrupted_run(make_config, path, monkeypatch):
    import ffcl.checkpoint as experiment

    cfg = make_config("split_digits", "naive", ["scenario.n_experiences=2", "scenario.epochs=1"])
    real = experiment.write_checkpoint
    calls = []

    def stop_after_first(strategy, p):
        real(strategy, p)
        calls.append(p)
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "write_checkpoint", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, path, quiet=True)
    monkeypatch.setattr(experiment, "write_checkpoint", real)
    return path


def test_own_checkpoint_resumes_a_received_one_is_refused(make_config, tmp_path, monkeypatch, capsys):
    mine = _interrupted_run(make_config, tmp_path / "mine", monkeypatch)
    received = tmp_path / "received"
    shutil.copytree(mine, received)
    with open(received / "checkpoint.pt", "ab") as f:  # someone else's file: other bytes
        f.write(b"\0")
    rc = main(["run", "--resume", str(received), "--quiet"])
    _, err = capsys.readouterr()
    assert rc == 2 and "was not written by ffcl on this machine" in err and "--trust-checkpoint" in err
    assert "Traceback" not in err and not (received / "metrics.json").exists()
    assert main(["run", "--resume", str(mine), "--quiet"]) == 0  # its own checkpoint: resumes
    assert (mine / "metrics.json").exists()


def test_trust_checkpoint_loads_a_received_run(make_config, tmp_path, monkeypatch):
    mine = _interrupted_run(make_config, tmp_path / "mine", monkeypatch)
    monkeypatch.setenv("FFCL_TRUST_FILE", str(tmp_path / "another_machine.txt"))  # a machine that never saw it
    assert main(["run", "--resume", str(mine), "--quiet"]) == 2
    assert main(["run", "--resume", str(mine), "--quiet", "--trust-checkpoint"]) == 0


def test_adapt_refuses_a_received_run(make_config, tmp_path, monkeypatch, capsys):
    cfg = make_config("split_digits", "naive", ["scenario.n_experiences=2", "scenario.epochs=1"])
    run_experiment(cfg, tmp_path / "run", quiet=True)
    monkeypatch.setenv("FFCL_TRUST_FILE", str(tmp_path / "another_machine.txt"))
    rc = main(["adapt", str(tmp_path / "run"), "--data", "digits", "--out", str(tmp_path / "adapted")])
    _, err = capsys.readouterr()
    assert rc == 2 and "was not written by ffcl on this machine" in err
    assert not (tmp_path / "adapted").exists()
    assert os.listdir(tmp_path / "run")  # nothing of the received run was touched


def test_report_of_a_received_run_reads_only_text(make_config, tmp_path, monkeypatch):
    """`ffcl report` never opens checkpoint.pt or learner.pt: booby-trapped ones do nothing."""
    import pickle

    import torch

    run = tmp_path / "received"
    run_experiment(make_config("split_digits", "naive", ["scenario.n_experiences=2", "scenario.epochs=1"]), run, quiet=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    for name in ("checkpoint.pt", "learner.pt"):
        torch.save({"strategy": Evil()}, run / name, pickle_module=pickle)
    monkeypatch.setenv("FFCL_TRUST_FILE", str(tmp_path / "empty.txt"))
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.md").is_file() and not marker.exists()
