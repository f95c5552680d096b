"""--logger tensorboard|wandb|csv (ffcl.loggers): the files each writes into the run directory hold
the run's accuracy matrix, read back with the logger's own format (TensorBoard's EventAccumulator,
W&B's protobuf records, the CSV rows); checkpoints store no logger; bad names and missing packages
are one-line errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import pickle
from pathlib import Path

import pytest
from conftest import build_run_config

from ffcl.cli import main
from ffcl.experiment import load_learner, run_experiment
from ffcl.loggers import Detached, make_loggers

ACC = "Top1_Acc_Exp/eval_phase/test_stream/Exp{:03d}"


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """A Split-Digits run with all three loggers (W&B offline), and its metrics.json."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path_factory.mktemp("loggers") / "run"
    try:
        metrics = run_experiment(build_run_config("split_digits", "naive", ['strategy.loggers=["tensorboard", "csv", "wandb"]']),
                                 run_dir, quiet=True)
    finally:
        mp.undo()
    return run_dir, metrics


def columns(metrics: dict) -> list[list[float]]:
    """Each test experience's accuracies: untrained, then after each training experience."""
    rows = [metrics["initial_accuracy"], *metrics["accuracy_matrix"]]
    return [[row[j] for row in rows] for j in range(len(rows[0]))]


def test_tensorboard_event_files_hold_the_accuracy_matrix(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, metrics = logged_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    for j, column in enumerate(columns(metrics)):
        scalars = events.Scalars(ACC.format(j))
        assert [s.value for s in scalars] == pytest.approx(column, rel=1e-6)  # float32 in the event file
        assert [s.step for s in scalars] == sorted({s.step for s in scalars})  # one per evaluation, in order
    for key in ("final_average_accuracy", "average_forgetting", "bwt"):
        assert events.Scalars(f"Summary/{key}")[-1].value == pytest.approx(metrics[key], rel=1e-6)


def test_csv_logger_rows_are_the_accuracy_matrix(logged_run):
    run_dir, metrics = logged_run
    with open(run_dir / "csv" / "eval_results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["training_exp"] != "None"]  # None: the untrained learner
    n = len(metrics["accuracy_matrix"])
    assert len(rows) == n * n and (run_dir / "csv" / "training_results.csv").is_file()
    for r in rows:
        assert float(r["eval_accuracy"]) == round(metrics["accuracy_matrix"][int(r["training_exp"])][int(r["eval_exp"])], 4)


def wandb_history(run_file: Path) -> dict[str, list[float]]:
    """Logged values per key from an offline W&B run file: a LevelDB-style log (7-byte header, then
    32 KiB blocks of chunks: crc32, length, type) of wandb_internal_pb2.Record messages."""
    from wandb.proto import wandb_internal_pb2

    data, pos, record, history = run_file.read_bytes(), 7, b"", {}
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:  # zero padding to the block's end
            pos += 32768 - pos % 32768 if pos % 32768 else 0
            continue
        record = chunk if kind in (1, 2) else record + chunk  # full, first | middle, last
        if kind in (1, 4):
            msg = wandb_internal_pb2.Record()
            msg.ParseFromString(record)
            for item in msg.history.item if msg.HasField("history") else ():
                history.setdefault(item.key or "/".join(item.nested_key), []).append(json.loads(item.value_json))
    return history


def test_wandb_offline_run_holds_the_accuracy_matrix(logged_run):
    run_dir, metrics = logged_run
    [run_file] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history = wandb_history(run_file)
    for j, column in enumerate(columns(metrics)):
        assert history[ACC.format(j)] == pytest.approx(column, rel=1e-12)
    assert history["Summary/final_average_accuracy"][-1] == pytest.approx(metrics["final_average_accuracy"])


def test_checkpoints_store_no_logger_and_reading_one_writes_nothing(logged_run):
    run_dir, _ = logged_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    strategy = load_learner(run_dir)
    assert [type(lg).__name__ for lg in strategy.evaluator.loggers][1:] == ["Detached"] * 3  # after the TextLogger
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before
    [tb] = make_loggers(["tensorboard"], run_dir / "again")
    assert isinstance(pickle.loads(pickle.dumps(tb)), Detached)
    tb.writer.close()


def test_csv_logger_continues_the_rows_of_an_earlier_start(tmp_path):
    [first] = make_loggers(["csv"], tmp_path)
    print("0,0,0.5000,0,0", file=first.eval_file)
    first.close()
    [second] = make_loggers(["csv"], tmp_path)  # what a resumed run makes
    print("1,1,0.7500,0,0", file=second.eval_file)
    second.close()
    lines = (tmp_path / "csv" / "eval_results.csv").read_text().splitlines()
    assert lines == ["eval_exp,training_exp,eval_accuracy,eval_loss,forgetting", "0,0,0.5000,0,0", "1,1,0.7500,0,0"]


def test_logger_from_the_command_line_and_compare(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["compare", "--strategies", "naive", "--seeds", "0", "--set", "strategy.hidden=[16]", "--logger", "csv",
                 "--out", str(out)]) == 0
    [run] = [p for p in out.iterdir() if (p / "metrics.json").is_file()]
    assert json.loads((run / "config.json").read_text())["strategy"]["loggers"] == ["csv"]
    assert (run / "csv" / "eval_results.csv").is_file() and not (run / "tensorboard").exists()
    capsys.readouterr()


@pytest.mark.parametrize("args,message", [
    (["--set", 'strategy.loggers=["mlflow"]'], "'loggers' must be one of tensorboard, wandb, csv; got 'mlflow'"),
    (["--logger", "csv", "--logger", "csv"], "'loggers' names csv more than once"),
])
def test_bad_logger_is_one_line(args, message, capsys):
    assert main(["run", *args, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("logger", ["tensorboard", "wandb"])
def test_missing_package_names_the_extra(logger, monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == logger else find_spec(name, *a))
    for command in (["run"], ["compare", "--strategies", "naive"], ["adapt", "somewhere", "--data", "npz:x.npz"]):
        assert main([*command, "--logger", logger, "--dry-run"] if command[0] != "adapt" else [*command, "--logger", logger]) == 2
        err = capsys.readouterr().err
        assert f"pip install 'ffcl[{logger}]'" in err and err.count("\n") == 1, err
