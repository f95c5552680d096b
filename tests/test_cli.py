"""Tests for the ffcl command line (ffcl.cli.main in-process, and the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import interrupt_at

from ffcl.cli import main
from ffcl.config import list_recipes
from ffcl.data import DATASETS

SMALL = ["--set", "strategy.hidden=[16]", "--set", "scenario.epochs=2", "--set", "scenario.n_experiences=2",
         "--device", "cpu"]


def user_error(capsys, rc: int, *needles: str) -> str:
    """Exit status 2 and one line on stderr starting with 'ffcl: error:', no traceback."""
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ffcl: error: "), err
    assert "Traceback" not in err and "Traceback" not in out
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# --------------------------------------------------------------------------- ffcl run


def test_run_quiet_prints_the_summary(tmp_path, capsys):
    out_dir = tmp_path / "run"
    rc = main(["run", "--quiet", "--out", str(out_dir), "--seed", "1", *SMALL])
    out, err = capsys.readouterr()
    assert rc == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["seed"] == 1 and len(metrics["accuracy_matrix"]) == 2
    lines = out.splitlines()
    assert lines[0] == "replay_free on split_digits (seed 1, cpu)"  # the replay-free recipe is the default strategy
    assert f"{100 * metrics['final_average_accuracy']:6.2f}" in next(x for x in lines if "final average accuracy" in x)
    assert any("average forgetting" in x for x in lines) and any(x.startswith("  BWT") for x in lines)
    assert "accuracy matrix (%):" in out and lines[-1] == f"run directory: {out_dir}"
    assert "[exp 1/2]" not in out  # --quiet: only the summary
    assert "Traceback" not in err


def test_run_prints_progress_without_quiet(tmp_path, capsys):
    rc = main(["run", "--out", str(tmp_path / "run"), "--strategy", "replay",
               "--set", "strategy.plugins.replay.mem_size=50", *SMALL])
    out, _ = capsys.readouterr()
    assert rc == 0
    assert "replay on split_digits" in out and "[exp 1/2]" in out and "[exp 2/2]" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["strategy"]["plugins"] == {"replay": {"mem_size": 50}}  # what the recipe and --set state
    assert config["strategy"]["hidden"] == [16] and config["strategy_name"] == "replay"


def test_interrupt_then_resume(tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_at(m, 1)
        rc = main(["run", "--quiet", "--out", str(out_dir), *SMALL])
    _, err = capsys.readouterr()
    assert rc == 130 and "--resume" in err and "Traceback" not in err
    assert not (out_dir / "metrics.json").exists()

    rc = main(["run", "--quiet", "--resume", str(out_dir)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert len(json.loads((out_dir / "metrics.json").read_text())["accuracy_matrix"]) == 2
    assert "final average accuracy" in out and f"run directory: {out_dir}" in out

    rc = main(["run", "--quiet", "--resume", str(out_dir)])  # finished: nothing to resume
    user_error(capsys, rc, "already finished")


# --------------------------------------------------------------------------- user errors


def test_unknown_scenario(tmp_path, capsys):
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--scenario", "no_such_scenario"])
    user_error(capsys, rc, "'no_such_scenario'", "split_digits")
    assert not (tmp_path / "run").exists()


def test_unknown_strategy(tmp_path, capsys):
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--strategy", "no_such_strategy"])
    user_error(capsys, rc, "'no_such_strategy'", "naive")
    assert not (tmp_path / "run").exists()


def test_missing_recipe_file(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--strategy", str(missing)])
    user_error(capsys, rc, str(missing), "does not exist")


def test_bad_recipe_file(tmp_path, capsys):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('learner = "mlp"\nepochs = "3"\n')
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--strategy", str(recipe)])
    user_error(capsys, rc, "'epochs'", "integer")


def test_unknown_learner_in_recipe(tmp_path, capsys):
    recipe = tmp_path / "mine.toml"
    recipe.write_text('learner = "no_such_learner"\nhidden = [8]\n')
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--strategy", str(recipe), *SMALL])
    user_error(capsys, rc, "unknown learner 'no_such_learner'", "mlp")


@pytest.mark.parametrize(
    "item, needles",
    [
        ("epochs=3", ["epochs=3", "section.key=value"]),
        ("strategy.epochs", ["strategy.epochs"]),
        ("strategy.epochs=x", ["'epochs'", "integer"]),
        ("strategy.nope=1", ["unknown key 'nope'"]),
        ("scenario.kind=online", ["'kind'", "'online'"]),
        ("strategy.plugins.replay.size=3", ["plugin 'replay' has no argument 'size'"]),
    ],
)
def test_bad_set(tmp_path, capsys, item, needles):
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--set", "strategy.hidden=[8]", "--set", item])
    user_error(capsys, rc, *needles)


def test_existing_out_dir(tmp_path, capsys):
    out_dir = tmp_path / "run"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("keep")
    rc = main(["run", "--quiet", "--out", str(out_dir), *SMALL])
    user_error(capsys, rc, str(out_dir), "already exists", "--resume")
    assert [p.name for p in out_dir.iterdir()] == ["keep.txt"] and (out_dir / "keep.txt").read_text() == "keep"


def test_missing_data_set(tmp_path, capsys):
    rc = main(["run", "--quiet", "--out", str(tmp_path / "run"), "--scenario", "split_cifar10",
               "--data-root", str(tmp_path / "empty"), *SMALL])
    user_error(capsys, rc, "CIFAR-10", str(tmp_path / "empty"))


def test_a_failed_start_leaves_out_reusable(tmp_path, capsys):
    out_dir = tmp_path / "run"
    rc = main(["run", "--quiet", "--out", str(out_dir), "--scenario", "split_cifar10",
               "--data-root", str(tmp_path / "empty"), *SMALL])
    user_error(capsys, rc, "CIFAR-10")
    rc = main(["run", "--quiet", "--out", str(out_dir), *SMALL])  # the corrected command
    capsys.readouterr()
    assert rc == 0


# --------------------------------------------------------------------------- other commands


def test_recipes(capsys):
    assert main(["recipes"]) == 0
    out, _ = capsys.readouterr()
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["scenarios"].split(", ") == list_recipes("scenarios")
    assert lines["strategies"].split(", ") == list_recipes("strategies")
    assert "split_digits" in lines["scenarios"] and "naive" in lines["strategies"]


def test_data_list(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FFCL_DATA_ROOT", str(tmp_path))
    assert main(["data", "list"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(DATASETS)
    digits = lines[list(DATASETS).index("digits")]
    assert digits.split()[1] == "ok" and "1347 train / 450 test" in digits
    cifar = lines[list(DATASETS).index("cifar10")]
    assert cifar.split()[1] == "missing" and str(tmp_path) in cifar
    assert "Traceback" not in err


def test_help_via_module(capsys):
    result = subprocess.run([sys.executable, "-m", "ffcl.cli", "--help"], capture_output=True, text=True, timeout=120,
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert result.returncode == 0 and "usage: ffcl" in result.stdout
    for command in ("run", "data", "recipes"):
        assert command in result.stdout


@pytest.mark.skipif(shutil.which("ffcl") is None, reason="the ffcl console script is not installed (pip install -e .)")
def test_console_script_help():
    result = subprocess.run(["ffcl", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage: ffcl" in result.stdout and "recipes" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["--out", "FILE"], "is a file, not a folder"),
    (["--out", "FILE/sub"], "is a file, not a folder"),
    (["--strategy", "sffa", "--set", "strategy.hidden=[]"], "'hidden' needs at least one width"),
    (["--strategy", "replay_free", "--set", "strategy.hidden=[]"], "'hidden' needs at least one width"),
    (["--strategy", "sffa", "--set", "strategy.learner_args.k=-1"], "'k' (winners per half of a layer)"),
    (["--strategy", "replay", "--set", "strategy.plugins.replay.mem_size=-5"], "'mem_size' must be >= 1"),
    (["--strategy", "naive", "--seed", "-1"], "the seed must be an integer"),
])
def test_bad_run_input_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, args, words):
    """Issue 14, item 15: these gave tracebacks."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("the user's file")
    rc = main(["run", "--quiet", *args])
    _, err = capsys.readouterr()
    assert rc == 2 and err.startswith("ffcl: error:") and words in err and "Traceback" not in err
    assert (tmp_path / "FILE").read_text() == "the user's file"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no half-made run directory


def test_damaged_run_files_are_one_line_errors(tmp_path, capsys):
    """Issue 14, item 15: a truncated checkpoint, an invalid config.json or metrics.json, and
    `ffcl report --out` on a file gave tracebacks."""
    run = tmp_path / "run"
    assert main(["run", "--quiet", "--out", str(run), "--strategy", "naive", *SMALL]) == 0
    capsys.readouterr()

    def fails(args, words):
        rc = main(args)
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("ffcl: error:") and words in err and "Traceback" not in err, err

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "metrics.json").unlink()
    (broken / "checkpoint.pt").write_bytes(b"garbage")
    fails(["run", "--resume", str(broken), "--trust-checkpoint"], "cannot be read as an ffcl checkpoint")
    (broken / "config.json").write_text("{bad")
    fails(["run", "--resume", str(broken)], "config.json is not valid")
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    (damaged / "metrics.json").write_text("{bad")
    fails(["report", str(damaged)], "is not valid JSON")
    (tmp_path / "afile").write_text("mine")
    fails(["report", str(run), "--out", str(tmp_path / "afile")], "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "mine"


def test_non_finite_weights_stop_the_run_with_one_line(tmp_path, capsys):
    """Issue 14, item 12: a diverging run used to finish 'successfully' with NaN weights."""
    rc = main(["run", "--quiet", "--out", str(tmp_path / "r"), "--strategy", "naive", *SMALL,
               "--set", "strategy.lr=1e12", "--set", 'strategy.optimizer="sgd"'])
    err = capsys.readouterr().err
    assert rc == 2 and "became NaN or infinite" in err and "features.1.weight" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_threads_zero_is_refused(tmp_path, capsys):
    assert main(["run", "--threads", "0", "--out", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("scenario_kind,anchors", [("class_incremental", "ncm,randumb,randconv,slda,replay,ewc"),
                                                    ("task_incremental", "ncm,naive,ewc,si,lwf,replay")])
def test_the_suggested_comparison_lists_each_strategy_once(tmp_path, capsys, scenario_kind, anchors):
    assert main(["run", "--strategy", "ncm", "--set", f"scenario.kind=\"{scenario_kind}\"", "--out", str(tmp_path / "r")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("compare it with"))
    assert line.endswith(f"--strategies {anchors} --seeds 0,1,2")
