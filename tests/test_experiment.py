"""Tests for ffcl.experiment.run_experiment: run directory, determinism, resume, joint and online runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import interrupt_at
from ffcl.config import to_dict
from ffcl.experiment import RunError, load_run_config, resolve_device, run_experiment
from ffcl.metrics import summarize
from ffcl.report import write_report

FILES = {"config.json", "metrics.json", "metrics.csv", "log.txt", "checkpoint.pt", "learner.pt", ".ffcl.lock"}  # the lock: ffcl.files


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- the run directory


def test_run_writes_the_run_directory(run_dir, make_config):
    cfg = make_config("split_digits", "naive", ["scenario.epochs=10"], seed=3)
    metrics = run_experiment(cfg, run_dir, quiet=True)

    assert {p.name for p in run_dir.iterdir()} == FILES  # and no leftover temporary files
    assert json.loads((run_dir / "config.json").read_text()) == to_dict(cfg)
    assert load_run_config(run_dir) == cfg
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(metrics))

    a = metrics["accuracy_matrix"]
    assert len(a) == 5 and all(len(row) == 5 for row in a)
    assert all(0.0 <= x <= 1.0 for row in a for x in row)
    assert sum(a[i][i] for i in range(5)) / 5 > 0.7  # each experience is learnt when trained
    assert all(a[i][j] < 0.05 for i in range(5) for j in range(i + 1, 5))  # unseen classes are (almost) never predicted
    for key, value in summarize(a, metrics["initial_accuracy"]).items():
        assert metrics[key] == pytest.approx(value)
    assert len(metrics["initial_accuracy"]) == 5  # the untrained network, evaluated once before training
    assert metrics["classes_per_experience"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert (metrics["scenario"], metrics["strategy"], metrics["dataset"], metrics["seed"], metrics["device"]) == (
        "split_digits", "naive", "digits", 3, "cpu")
    assert len(metrics["train_time_per_experience_s"]) == 5
    assert metrics["train_time_s"] == pytest.approx(sum(metrics["train_time_per_experience_s"]))
    assert metrics["wall_time_s"] >= metrics["train_time_s"] > 0 and metrics["peak_memory_mb"] > 0

    rows = csv_rows(run_dir / "metrics.csv")
    assert [(int(r["trained_experience"]), int(r["test_experience"])) for r in rows] == [
        (i, j) for i in range(5) for j in range(5)]
    for r in rows:
        assert float(r["accuracy"]) == pytest.approx(a[int(r["trained_experience"])][int(r["test_experience"])], abs=1e-6)

    log = (run_dir / "log.txt").read_text()
    assert log.count("Top1_Acc_Exp/eval_phase/test_stream/Exp004") == 6  # before training, then after each experience
    assert "Epoch 9 ended." in log and "Epoch 10 ended." not in log  # the scenario's 10 epochs
    assert (run_dir / "checkpoint.pt").stat().st_size > 0


def test_scenario_budget_overrides_are_used(run_dir, make_config):
    run_experiment(make_config("split_digits", "naive", ["scenario.epochs=2", "scenario.n_experiences=2"]), run_dir, quiet=True)
    log = (run_dir / "log.txt").read_text()
    assert log.count("Epoch 1 ended.") == 2 and "Epoch 2 ended." not in log
    assert len(json.loads((run_dir / "metrics.json").read_text())["accuracy_matrix"]) == 2


def test_an_existing_empty_directory_is_used(run_dir, make_config):
    run_dir.mkdir()
    run_experiment(make_config("split_digits", "naive", ["scenario.epochs=1", "scenario.n_experiences=2"]), run_dir, quiet=True)
    assert FILES == {p.name for p in run_dir.iterdir()}


def test_refuses_an_existing_run_directory(run_dir, make_config):
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="already exists"):
        run_experiment(make_config(), run_dir, quiet=True)
    assert snapshot(run_dir) == {"notes.txt": b"mine"}


def test_refuses_to_overwrite_a_finished_run(run_dir, make_config):
    cfg = make_config("split_digits", "naive", ["scenario.epochs=1", "scenario.n_experiences=2"])
    run_experiment(cfg, run_dir, quiet=True)
    before = snapshot(run_dir)
    with pytest.raises(RunError, match="already exists"):
        run_experiment(cfg, run_dir, quiet=True)
    assert snapshot(run_dir) == before


def test_a_new_run_needs_a_config(run_dir):
    with pytest.raises(RunError):
        run_experiment(None, run_dir, quiet=True)
    assert not run_dir.exists()


def test_messages_go_to_echo(run_dir, make_config):
    said: list[str] = []
    run_experiment(make_config("split_digits", "naive", ["scenario.epochs=1", "scenario.n_experiences=2"]), run_dir, echo=said.append)
    assert len(said) == 3 and "naive on split_digits" in said[0]
    assert said[1].startswith("[exp 1/2]") and said[2].startswith("[exp 2/2]")
    quiet: list[str] = []
    run_experiment(make_config("split_digits", "naive", ["scenario.epochs=1", "scenario.n_experiences=2"]), run_dir.with_name("q"),
                   quiet=True, echo=quiet.append)
    assert quiet == []


def test_cuda_without_a_gpu_is_a_run_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RunError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_matrix(tmp_path, make_config):
    def matrix(name, seed):
        cfg = make_config("split_digits", "replay", ["strategy.plugins.replay.mem_size=100", "scenario.epochs=3"], seed=seed)
        return run_experiment(cfg, tmp_path / name, quiet=True)["accuracy_matrix"]

    first = matrix("a", 0)
    torch.manual_seed(999)  # the global RNG state before the run does not matter
    assert matrix("b", 0) == first
    other = matrix("c", 1)  # another seed: a valid matrix (it usually differs, not asserted)
    assert len(other) == 5 and all(0 <= x <= 1 for row in other for x in row)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize(
    "scenario, strategy, overrides, stop",
    [
        ("split_digits", "naive", ["scenario.epochs=3"], 3),
        ("split_digits", "naive", ["scenario.epochs=3"], 0),
        # plugin state (the replay buffer) must come back from the checkpoint
        ("split_digits", "replay", ["scenario.epochs=3", "strategy.plugins.replay.mem_size=100"], 3),
        # A-GEM's memory must pickle (Avalanche's holds a DataLoader generator; ffcl's holds tensors)
        ("split_digits", "agem", ["scenario.epochs=2", "strategy.plugins.agem.patterns_per_experience=50"], 2),
    ],
)
def test_resume_after_interruption(tmp_path, monkeypatch, make_config, scenario, strategy, overrides, stop):
    cfg = make_config(scenario, strategy, overrides)
    full = run_experiment(cfg, tmp_path / "full", quiet=True)

    run_dir = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        interrupt_at(m, stop)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, run_dir, quiet=True)
    assert not (run_dir / "metrics.json").exists()
    assert (run_dir / "checkpoint.pt").exists() == (stop > 0)
    if stop:
        assert len(csv_rows(run_dir / "metrics.csv")) == 5 * stop

    said: list[str] = []
    resumed = run_experiment(None, run_dir, resume=True, echo=said.append)
    assert f"after {stop} experience(s)" in said[0]
    a, b = full["accuracy_matrix"], resumed["accuracy_matrix"]
    assert len(b) == 5 and all(len(row) == 5 for row in b)
    assert b[:stop] == a[:stop]  # the rows from before the interruption are kept
    assert b == a  # and training picks up exactly where it stopped (RNG, optimiser, buffer restored)
    assert resumed["initial_accuracy"] == full["initial_accuracy"]
    for key, value in summarize(b, resumed["initial_accuracy"]).items():
        assert resumed[key] == pytest.approx(value)
    assert json.loads((run_dir / "metrics.json").read_text())["accuracy_matrix"] == b
    rows = csv_rows(run_dir / "metrics.csv")
    assert [(int(r["trained_experience"]), int(r["test_experience"])) for r in rows] == [
        (i, j) for i in range(5) for j in range(5)]
    assert len(resumed["train_time_per_experience_s"]) == 5


@pytest.mark.parametrize("strategy", ["naive", "sffa"])
def test_evaluating_only_the_seen_experiences(tmp_path, monkeypatch, make_config, strategy):
    """scenario.evaluate = "seen": each row holds the experiences trained so far, exactly as
    evaluating the whole stream gives them, and None after; no untrained evaluation, so no forward
    transfer; metrics.csv lists the evaluated entries; an interrupted run resumes to the same matrix."""
    base = ["scenario.epochs=2", "scenario.n_experiences=4"]
    full = run_experiment(make_config("split_digits", strategy, base), tmp_path / "all", quiet=True)
    cfg = make_config("split_digits", strategy, base + ['scenario.evaluate="seen"'])
    seen = run_experiment(cfg, tmp_path / "seen", quiet=True)
    a, b = full["accuracy_matrix"], seen["accuracy_matrix"]
    assert b == [[a[i][j] if j <= i else None for j in range(4)] for i in range(4)]
    assert seen["initial_accuracy"] is None and seen["forward_transfer"] is None and full["forward_transfer"] is not None
    for key in ("final_average_accuracy", "average_forgetting", "bwt", "plasticity"):
        assert seen[key] == pytest.approx(full[key])
    assert [(int(r["trained_experience"]), int(r["test_experience"])) for r in csv_rows(tmp_path / "seen" / "metrics.csv")] == [
        (i, j) for i in range(4) for j in range(i + 1)]
    run_dir = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, run_dir, quiet=True)
    assert run_experiment(None, run_dir, resume=True, quiet=True)["accuracy_matrix"] == b
    report = write_report([tmp_path / "seen"], tmp_path / "report")  # the matrix plot leaves the unseen entries blank
    assert "00-seen-matrix.png" in report.read_text() and (tmp_path / "report" / "00-seen-matrix.png").stat().st_size > 0


def test_resume_an_online_run_interrupted_mid_experience(tmp_path, monkeypatch, make_config):
    cfg = make_config("online_split_digits", "naive", ["scenario.online_experience_size=10"])
    full = run_experiment(cfg, tmp_path / "full", quiet=True)
    run_dir = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        interrupt_at(m, 2, online=True)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, run_dir, quiet=True)
    resumed = run_experiment(None, run_dir, resume=True, quiet=True)
    assert resumed["accuracy_matrix"][:2] == full["accuracy_matrix"][:2]
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]


def test_resuming_a_finished_run_is_an_error(run_dir, make_config):
    run_experiment(make_config("split_digits", "naive", ["scenario.epochs=1", "scenario.n_experiences=2"]), run_dir, quiet=True)
    before = snapshot(run_dir)
    with pytest.raises(RunError, match="already finished"):
        run_experiment(None, run_dir, resume=True, quiet=True)
    assert snapshot(run_dir) == before


def test_resuming_something_else_is_an_error(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        run_experiment(None, tmp_path, resume=True, quiet=True)


# --------------------------------------------------------------------------- joint and online


def test_joint_learner_on_split_digits(run_dir, make_config):
    metrics = run_experiment(make_config("split_digits", "joint", ["scenario.epochs=5", "scenario.batch_size=32"]), run_dir, quiet=True)
    (row,) = metrics["accuracy_matrix"]
    assert len(row) == 5 and min(row) > 0.5  # every experience learnt at once
    assert metrics["average_forgetting"] is None and metrics["bwt"] is None
    assert metrics["final_average_accuracy"] == pytest.approx(sum(row) / 5)
    assert len(csv_rows(run_dir / "metrics.csv")) == 5


def test_joint_scenario(run_dir, make_config):
    metrics = run_experiment(make_config("joint_digits", "naive", ["scenario.epochs=3"]), run_dir, quiet=True)
    assert metrics["classes_per_experience"] == [list(range(10))]
    assert len(metrics["accuracy_matrix"]) == 1 and len(metrics["accuracy_matrix"][0]) == 1
    assert metrics["final_average_accuracy"] > 0.5
    assert metrics["average_forgetting"] is None and metrics["bwt"] is None


def test_online_scenario(run_dir, make_config):
    metrics = run_experiment(make_config("online_split_digits", "naive"), run_dir, quiet=True)
    a = metrics["accuracy_matrix"]
    assert len(a) == 5 and all(len(row) == 5 for row in a)
    assert all(0.0 <= x <= 1.0 for row in a for x in row)
    assert metrics["average_forgetting"] == pytest.approx(summarize(a)["average_forgetting"])
    log = (run_dir / "log.txt").read_text()
    assert log.count("-- Starting training on experience") == 5
    assert log.count("Epoch 0 ended.") == 5 and "Epoch 1 ended." not in log  # a single pass each


def test_online_mini_experiences(run_dir, make_config):
    metrics = run_experiment(make_config("online_split_digits", "naive", ["scenario.online_experience_size=10"]), run_dir, quiet=True)
    assert len(metrics["accuracy_matrix"]) == 5
    log = (run_dir / "log.txt").read_text()
    # one Avalanche mini-experience of 10 samples per training call: ceil(n / 10) per class pair, 136 in all
    assert log.count("-- Starting training on experience") == 136


def test_anytime_accuracy_curve(run_dir, make_config):
    cfg = make_config("online_split_digits", "naive", ["scenario.anytime_every=50", "scenario.anytime_test_size=40"])
    metrics = run_experiment(cfg, run_dir, quiet=True)
    curve = metrics["anytime"]
    samples = [p["samples"] for p in curve]
    assert samples == sorted(set(samples)) and samples[-1] == 1347  # every training sample counted once
    ends = {max(p["samples"] for p in curve if p["experience"] == e) for e in range(5)}
    for p in curve:  # within one minibatch (10) after each multiple of 50, or at the end of an experience
        assert p["samples"] in ends or p["samples"] % 50 < 10
    assert 1347 // 50 <= len(curve) <= 1347 // 50 + 5  # one per multiple of 50, plus the experience ends
    assert [p["experience"] for p in curve] == sorted(p["experience"] for p in curve)
    assert {p["experience"] for p in curve} == set(range(5))
    # the last point is the accuracy on all test experiences' subsets, a real number in [0, 1]
    assert 0.0 <= curve[-1]["accuracy"] <= 1.0
    end_of_first = [p for p in curve if p["experience"] == 0][-1]
    assert end_of_first["accuracy"] > 0.8  # two classes, learnt: well above chance
    assert "Anytime_Acc/train_phase/seen_so_far" in (run_dir / "log.txt").read_text()


def test_anytime_curve_survives_resume(tmp_path, monkeypatch, make_config):
    cfg = make_config("online_split_digits", "naive", ["scenario.anytime_every=100"])
    full = run_experiment(cfg, tmp_path / "full", quiet=True)
    run_dir = tmp_path / "interrupted"
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, run_dir, quiet=True)
    resumed = run_experiment(None, run_dir, resume=True, quiet=True)
    assert resumed["anytime"] == full["anytime"]


def test_drift_scenario(run_dir, make_config):
    metrics = run_experiment(make_config("online_drift_digits", "naive", ["strategy.hidden=[64]", "strategy.lr=0.01"]), run_dir, quiet=True)
    assert metrics["classes_per_experience"] == [list(range(10))] * 5
    a = metrics["accuracy_matrix"]
    assert a[0][0] > 0.5  # ten classes at 0 degrees, learnt online
    assert a[0][4] < a[0][0] - 0.2  # the same classes rotated 90 degrees: a different domain
    assert a[4][4] > a[0][4] + 0.2  # ... learnt when they arrive


def test_joint_learner_cannot_run_online(run_dir, make_config):
    with pytest.raises(RunError, match="online"):
        run_experiment(make_config("online_split_digits", "joint"), run_dir, quiet=True)


def test_ff_runs_record_block_activity_and_forward_transfer(run_dir, make_config):
    cfg = make_config("split_digits", "sffa", ["strategy.hidden=[40, 40]", "scenario.epochs=1", "scenario.n_experiences=2"])
    metrics = run_experiment(cfg, run_dir, quiet=True)
    assert len(metrics["activity"]) == 2 and all(len(per_exp) == 2 for per_exp in metrics["activity"])
    assert all(s["sparsity"] >= 1 - 2 * 15 / 40 - 1e-6 for per_exp in metrics["activity"] for s in per_exp)  # k = 15 per half
    # before training nothing is a candidate: every image scores class 0, the first class of experience 0
    assert metrics["initial_accuracy"][1] == 0.0 and 0 < metrics["initial_accuracy"][0] < 1
    assert metrics["forward_transfer"] == pytest.approx(metrics["accuracy_matrix"][0][1] - metrics["initial_accuracy"][1])
    assert "Activation_Sparsity/block1" in (run_dir / "log.txt").read_text()


def test_a_stream_from_an_image_folder(tmp_path, make_config):
    from PIL import Image

    from ffcl.data import load_dataset

    digits = load_dataset("digits")
    for c, name in enumerate(["zero", "one", "two"]):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i, img in enumerate(digits.x_train[digits.y_train == c][:30]):
            Image.fromarray((img[0] * 255).byte().numpy()).save(tmp_path / "imgs" / name / f"{i}.png")
    cfg = make_config("online_split_digits", "naive", [f"scenario.dataset='folder:{tmp_path / 'imgs'}'",
                                                       "scenario.n_experiences=3", "scenario.anytime_every=20"])
    metrics = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert metrics["classes_per_experience"] == [[0], [1], [2]] and metrics["dataset"] == "imgs"
    assert len(metrics["accuracy_matrix"]) == 3 and metrics["anytime"][-1]["samples"] == 72  # 80% of 90 images


def test_matrix_summaries_are_logged_through_avalanche(run_dir, make_config):
    import re

    metrics = run_experiment(make_config("split_digits", "naive", ["scenario.epochs=2"]), run_dir, quiet=True)
    log = (run_dir / "log.txt").read_text()
    # after each of the 5 experiences, each summary that is defined so far (plasticity and FWT need all rows)
    for key, times in (("final_average_accuracy", 5), ("average_forgetting", 4), ("bwt", 4), ("plasticity", 1),
                       ("forward_transfer", 1)):
        logged = re.findall(rf"Summary/{key} = ([-0-9.]+)", log)
        assert len(logged) == times and float(logged[-1]) == pytest.approx(metrics[key], abs=1e-4)
    assert float(re.findall(r"Summary/peak_memory_mb = ([0-9.]+)", log)[-1]) > 0
    assert "StreamForgetting" not in log and "StreamBWT" not in log  # counted once, from the matrix


def test_a_failed_checkpoint_save_neither_repeats_csv_rows_nor_loses_the_log(make_config, run_dir, monkeypatch):
    """Issue 14, item 16: metrics.csv was appended before the checkpoint was written (a failed save
    then duplicated the experience's rows on resume), and log.txt was never flushed."""
    import ffcl.checkpoint as experiment

    cfg = make_config("split_digits", "naive", ["scenario.n_experiences=3", "scenario.epochs=1"])
    real, calls = experiment.write_checkpoint, []

    def failing(strategy, path):
        calls.append(path)
        if len(calls) == 2:  # what was logged is on disk already, as it would be if the process died here
            assert "Top1_Acc_Stream" in (run_dir / "log.txt").read_text()
            raise OSError(28, "No space left on device")
        real(strategy, path)

    monkeypatch.setattr(experiment, "write_checkpoint", failing)
    with pytest.raises(OSError):
        run_experiment(cfg, run_dir, quiet=True)
    monkeypatch.setattr(experiment, "write_checkpoint", real)
    run_experiment(None, run_dir, resume=True, quiet=True)
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    pairs = [tuple(line.split(",")[:2]) for line in lines[1:]]
    assert len(pairs) == 9 and len(set(pairs)) == 9  # 3 x 3 entries, each once


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(run_dir, monkeypatch, capsys):
    """Issue 14, item 15: the disk fills while the second checkpoint is written."""
    import ffcl.checkpoint as experiment
    from ffcl.cli import main
    from ffcl.experiment import load_learner

    real, calls = experiment.save_checkpoint, []

    def filling(strategy, path):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError(28, "No space left on device")
        real(strategy, path)

    monkeypatch.setattr(experiment, "save_checkpoint", filling)
    args = ["run", "--scenario", "split_digits", "--strategy", "naive", "--set", "scenario.n_experiences=3",
            "--set", "strategy.hidden=[16]", "--out", str(run_dir), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device" in err and "previous version is kept" in err
    assert not list(run_dir.glob("*.tmp"))
    assert len(load_learner(run_dir).ffcl_progress["rows"]) == 1  # the first experience's checkpoint, intact and trusted
    monkeypatch.setattr(experiment, "save_checkpoint", real)
    assert main(["run", "--resume", str(run_dir), "--quiet"]) == 0
    assert len(json.loads((run_dir / "metrics.json").read_text())["accuracy_matrix"]) == 3


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical_under_load(tmp_path):
    """Issue 16, item 2: the same recipe, seed and thread count, once alone and once beside two
    busy processes, give identical metrics; the run directory records how it was run."""
    import subprocess
    import sys

    def run(out):
        cmd = [sys.executable, "-m", "ffcl.cli", "run", "--scenario", "split_digits", "--strategy", "df", "--deterministic",
               "--threads", "2", "--set", "strategy.hidden=[64]", "--set", "scenario.n_experiences=2", "--out", str(out), "--quiet"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads((out / "metrics.json").read_text())

    alone = run(tmp_path / "alone")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = run(tmp_path / "loaded")
    finally:
        for p in busy:
            p.kill()
    assert loaded["accuracy_matrix"] == alone["accuracy_matrix"] and loaded["initial_accuracy"] == alone["initial_accuracy"]
    config = json.loads((tmp_path / "alone" / "config.json").read_text())
    assert config["threads"] == 2 and config["deterministic"] is True
    machine = alone["machine"]
    assert machine["threads"] == 2 and machine["deterministic_algorithms"] is True and machine["torch"] and machine["avalanche-lib"]


def test_run_settings_apply_to_the_run_only(make_config, run_dir):
    from dataclasses import replace

    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    cfg = replace(make_config("split_digits", "naive", ["scenario.n_experiences=2"]), threads=2, deterministic=True)
    m = run_experiment(cfg, run_dir, quiet=True)
    assert m["machine"]["threads"] == 2 and m["machine"]["deterministic_algorithms"] is True
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    with pytest.raises(Exception, match="threads must be >= 1"):
        run_experiment(replace(cfg, threads=0), run_dir.with_name("other"), quiet=True)
