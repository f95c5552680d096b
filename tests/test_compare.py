"""ffcl compare: the grid of runs, its resumption, and the side-by-side summary."""

from __future__ import annotations

import json

import pytest

from ffcl.cli import main
from ffcl.config import to_dict
from ffcl.compare import Cell, cell_config, format_markdown, grid_cells, run_grid, summarize_runs, write_comparison


def _fake_run(path, strategy, seed, acc, forgetting):
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "strategy": strategy, "scenario": "split_x", "seed": seed, "final_average_accuracy": acc,
        "average_forgetting": forgetting, "bwt": None if forgetting is None else -forgetting,
        "train_time_s": 10.0 + seed, "peak_memory_mb": 100.0,
    }))
    return path


def test_summary_is_mean_and_std_over_seeds(tmp_path):
    dirs = [_fake_run(tmp_path / f"a{s}", "a", s, acc, 0.1 * s) for s, acc in enumerate([0.80, 0.90, 0.85])]
    dirs.append(_fake_run(tmp_path / "joint", "joint", 0, 0.97, None))
    rows = {r["strategy"]: r for r in summarize_runs(dirs)}
    a = rows["a"]
    assert a["seeds"] == [0, 1, 2]
    assert a["final_average_accuracy"] == pytest.approx(85.0)
    assert a["final_average_accuracy_std"] == pytest.approx(5.0)
    assert a["average_forgetting"] == pytest.approx(10.0)
    assert a["train_time_s"] == pytest.approx(11.0)
    assert rows["joint"]["average_forgetting"] is None
    table = format_markdown(list(rows.values()))
    assert "| a | 0,1,2 | 85.00 ± 5.00 |" in table
    assert "| joint | 0 | 97.00 | n/a | n/a |" in table
    write_comparison(list(rows.values()), tmp_path)
    assert "85.00 ± 5.00" in (tmp_path / "comparison.md").read_text()
    assert (tmp_path / "comparison.csv").read_text().splitlines()[0].startswith("strategy,seeds,final_average_accuracy")


@pytest.mark.slow
def test_grid_runs_then_reuses_finished_runs(tmp_path):
    small = ["strategy.hidden=[16]", "scenario.n_experiences=2", "scenario.epochs=1"]
    said = []
    dirs, failed = run_grid("split_digits", grid_cells(["naive"], [0, 1]), tmp_path / "grid", overrides=small, echo=said.append)
    assert not failed
    assert [d.name for d in dirs] == ["naive-seed0", "naive-seed1"]
    assert all((d / "metrics.json").exists() for d in dirs)
    before = [(d / "metrics.json").read_text() for d in dirs]
    said.clear()
    run_grid("split_digits", grid_cells(["naive"], [0, 1]), tmp_path / "grid", overrides=small, echo=said.append)
    assert said == ["naive-seed0: finished earlier, reused", "naive-seed1: finished earlier, reused"]
    assert [(d / "metrics.json").read_text() for d in dirs] == before  # never overwritten


@pytest.mark.slow
def test_compare_cli(tmp_path, capsys):
    rc = main(["compare", "--strategies", "naive,replay", "--seeds", "0", "--out", str(tmp_path / "g"),
               "--set", "strategy.hidden=[16]", "--set", "scenario.n_experiences=2", "--set", "scenario.epochs=1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "| naive | 0 |" in out and "| replay | 0 |" in out
    assert (tmp_path / "g" / "comparison.md").exists()


def test_compare_rejects_bad_names_before_running(tmp_path, capsys):
    rc = main(["compare", "--strategies", "naive,nope", "--out", str(tmp_path / "g")])
    _, err = capsys.readouterr()
    assert rc == 2 and err.startswith("ffcl: error:") and "'nope'" in err
    assert not (tmp_path / "g").exists()
    rc = main(["compare", "--strategies", "naive", "--seeds", "0,x", "--out", str(tmp_path / "g")])
    _, err = capsys.readouterr()
    assert rc == 2 and "--seeds" in err


@pytest.mark.parametrize("args, words", [
    (["--strategies", "naive,naive"], "naive more than once"),
    (["--strategies", "naive", "--seeds", "0,0"], "0 more than once"),
    (["--strategies", ","], "at least one strategy"),
])
def test_compare_rejects_repeated_or_empty_lists(tmp_path, capsys, args, words):
    rc = main(["compare", *args, "--out", str(tmp_path / "g")])
    _, err = capsys.readouterr()
    assert rc == 2 and err.startswith("ffcl: error:") and words in err and "Traceback" not in err
    assert not (tmp_path / "g").exists()


@pytest.mark.slow
def test_grid_never_deletes_what_ffcl_did_not_write(tmp_path):
    small = ["strategy.hidden=[16]", "scenario.n_experiences=2", "scenario.epochs=1"]
    mine = tmp_path / "grid" / "naive-seed0"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's own file")
    with pytest.raises(Exception, match="ffcl did not write"):
        run_grid("split_digits", [Cell("naive", 0)], tmp_path / "grid", overrides=small, echo=lambda s: None)
    assert (mine / "notes.txt").read_text() == "the user's own file"
    (mine / "notes.txt").unlink()
    cfg = cell_config("split_digits", Cell("naive", 0), small)  # an unfinished run of ffcl's own: cleared and run again
    (mine / "config.json").write_text(json.dumps(to_dict(cfg)))
    dirs, _ = run_grid("split_digits", [Cell("naive", 0)], tmp_path / "grid", overrides=small, echo=lambda s: None)
    assert (dirs[0] / "metrics.json").exists()


def test_grid_cells_sweep_every_combination():
    cells = grid_cells(["naive", "my/sffa.toml"], [0, 1], ["strategy.lr=1e-3,3e-3", "strategy.hidden=[8]"])
    assert len(cells) == 2 * 2 * 2
    assert cells[0] == Cell("naive", 0, ("strategy.lr=1e-3", "strategy.hidden=[8]"))
    assert cells[0].label == "naive [strategy.lr=1e-3, strategy.hidden=[8]]"
    assert cells[0].dirname == "naive-lr=1e-3_hidden=_8_-seed0"
    assert cells[-1].dirname == "sffa-lr=3e-3_hidden=_8_-seed1"
    with pytest.raises(Exception, match="value1,value2"):
        grid_cells(["naive"], [0], ["strategy.lr"])


@pytest.mark.slow
def test_compare_sweeps_a_grid_in_parallel_and_reports_failed_runs(tmp_path, capsys):
    """--grid makes one row per setting; --workers 2 runs two cells at a time; a run that fails
    (an lr that breaks the recipe's validation) is listed, not dropped, and the others finish."""
    out = tmp_path / "g"
    rc = main(["compare", "--strategies", "naive", "--seeds", "0,1", "--out", str(out), "--workers", "2",
               "--grid", "strategy.lr=0.001,-1", "--set", "strategy.hidden=[16]", "--set", "scenario.n_experiences=2",
               "--set", "scenario.epochs=1"])
    captured = capsys.readouterr()
    assert rc == 2 and "2 of 4 runs failed" in captured.err
    assert "| naive [strategy.lr=0.001] | 0,1 |" in captured.out
    text = (out / "comparison.md").read_text()
    assert "## Failed runs" in text and "naive-lr=-1-seed0: ffcl: error:" in text and "lr" in text.split("## Failed runs")[1]
    assert (out / "naive-lr=-1-seed1.failed.txt").is_file()
    assert all((out / f"naive-lr=0.001-seed{s}" / "metrics.json").is_file() for s in (0, 1))


@pytest.mark.slow
def test_ray_executor_gives_the_local_table(tmp_path):
    """Issue 16, item 1: the same grid through a local Ray instance and through local worker
    processes gives the same numbers (every run gets the same thread count either way)."""
    import os

    import ray  # noqa: F401  (in the dev extra)
    small = ["--set", "strategy.hidden=[16]", "--set", "scenario.n_experiences=2", "--set", "scenario.epochs=1"]
    tables = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        assert main(["compare", "--strategies", "naive,replay", "--seeds", "0,1", "--workers", "2", "--executor", executor,
                     "--out", str(out), *small]) == 0
        tables[executor] = {r["strategy"]: r for r in summarize_runs(sorted(out.glob("*-seed*")))}
    for strategy, row in tables["local"].items():
        for key in ("final_average_accuracy", "average_forgetting", "bwt", "plasticity"):
            assert tables["ray"][strategy][key] == row[key], (strategy, key)
    config = json.loads((tmp_path / "ray" / "naive-seed0" / "config.json").read_text())
    assert config["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)  # the cores divided by the workers


@pytest.mark.slow
def test_a_finished_run_of_another_recipe_is_not_reused(tmp_path, capsys):
    """issue 26: `--scenario online_split_digits` into a folder holding a split_digits run must not
    report the old run under the new title; nor may a run made with other --set overrides be reused."""
    out = tmp_path / "g"
    base = ["compare", "--strategies", "ncm", "--seeds", "0", "--out", str(out)]
    assert main(base) == 0
    before = (out / "ncm-seed0" / "metrics.json").read_bytes()
    capsys.readouterr()
    for extra in (["--scenario", "online_split_digits"], ["--set", "scenario.n_experiences=2"]):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert "holds a run of another recipe" in err and len(err.strip().splitlines()) == 1
    assert (out / "ncm-seed0" / "metrics.json").read_bytes() == before
    assert main(base) == 0 and "finished earlier, reused" in capsys.readouterr().out


@pytest.mark.slow
def test_a_run_whose_recipe_stated_a_default_is_reused(tmp_path, capsys):
    """A recipe that states a default value and one that leaves it out are the same recipe: a run made
    when the recipe said `shrinkage = 1e-4` explicitly is reused when the recipe no longer says it."""
    import json

    out = tmp_path / "g"
    base = ["compare", "--strategies", "slda", "--seeds", "0", "--out", str(out)]
    assert main(base) == 0
    config = out / "slda-seed0" / "config.json"
    recorded = json.loads(config.read_text())
    from ffcl.config import StrategyConfig, from_dict
    from ffcl.strategies.registry import argument_defaults

    defaults = argument_defaults(from_dict(StrategyConfig, recorded["strategy"], "strategy"))["learner_args"]
    assert defaults, "slda has arguments with defaults"
    recorded["strategy"]["learner_args"] = {**defaults, **recorded["strategy"]["learner_args"]}
    config.write_text(json.dumps(recorded))
    capsys.readouterr()
    assert main(base) == 0 and "finished earlier, reused" in capsys.readouterr().out
    key, value = next(iter(defaults.items()))
    other = value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else not value
    recorded["strategy"]["learner_args"][key] = other  # a value that is not the default: another recipe
    config.write_text(json.dumps(recorded))
    assert main(base) == 2 and "holds a run of another recipe" in capsys.readouterr().err


def test_repeated_grid_values_are_refused(tmp_path, capsys):
    assert main(["compare", "--strategies", "ncm", "--grid", "strategy.lr=1e-3,1e-3", "--out", str(tmp_path / "g")]) == 2
    assert "repeated" in capsys.readouterr().err and not (tmp_path / "g").exists()


def test_compare_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    assert main(["compare", "--strategies", "ncm", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and len(err.strip().splitlines()) == 1 and (tmp_path / "f").read_text() == "mine"


def test_a_dry_run_builds_each_seeds_stream_once_and_holds_one(tmp_path, capsys, monkeypatch):
    import ffcl.experiment as experiment

    built, held = [], []
    real = experiment._data_and_stream
    original_dry_run = experiment.dry_run

    def counting(cfg, cache=True):
        built.append(cfg.seed)
        return real(cfg, cache)

    def watching(cfg, streams=None):
        line = original_dry_run(cfg, streams)
        held.append(len(streams))
        return line

    monkeypatch.setattr(experiment, "_data_and_stream", counting)
    monkeypatch.setattr(experiment, "dry_run", watching)
    rc = main(["compare", "--strategies", "naive,replay,ncm", "--seeds", "0,1", "--out", str(tmp_path / "g"), "--dry-run"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(built) == [0, 1] and held == [1] * 6
    assert not (tmp_path / "g").exists()


def test_a_run_whose_recipe_only_reworded_its_description_is_reused(tmp_path, capsys):
    out = tmp_path / "g"
    base = ["compare", "--strategies", "ncm", "--seeds", "0", "--out", str(out)]
    assert main(base) == 0
    config = out / "ncm-seed0" / "config.json"
    recorded = json.loads(config.read_text())
    recorded["strategy"]["description"] = recorded["scenario"]["description"] = "worded otherwise"
    config.write_text(json.dumps(recorded))
    capsys.readouterr()
    assert main(base) == 0 and "finished earlier, reused" in capsys.readouterr().out
