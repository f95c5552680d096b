"""ffcl report: the Markdown report and its plots."""

from __future__ import annotations

import json

import pytest

from ffcl.cli import main
from ffcl.experiment import RunError
from ffcl.report import write_report


def _run(path, strategy, matrix, allocation=None):
    path.mkdir(parents=True)
    m = {"strategy": strategy, "scenario": "split_x", "seed": 0, "device": "cpu", "accuracy_matrix": matrix,
         "final_average_accuracy": sum(matrix[-1]) / len(matrix[-1]), "average_forgetting": 0.1, "bwt": -0.1,
         "train_time_s": 1.0, "wall_time_s": 2.0, "peak_memory_mb": 10.0}
    if allocation:
        m["allocation"] = allocation
    (path / "metrics.json").write_text(json.dumps(m))
    return path


def test_report_has_table_and_plots(tmp_path):
    a = _run(tmp_path / "a", "sffa_alloc", [[1.0, 0.0], [0.9, 0.8]],
             allocation=[{"units": 40, "neurons_per_class": {"0": 2, "1": 2}, "free_neurons": 32}])
    b = _run(tmp_path / "b", "replay", [[0.99, 0.0], [0.7, 0.95]])
    report = write_report([a, b], tmp_path / "rep")
    text = report.read_text()
    assert "| a (sffa_alloc, seed 0) | 85.00 |" in text and "| b (replay, seed 0) | 82.50 |" in text
    pngs = sorted(p.name for p in (tmp_path / "rep").glob("*.png"))
    assert pngs == ["00-a-curves.png", "00-a-matrix.png", "00-a-neurons.png", "01-b-curves.png", "01-b-matrix.png",
                    "average_accuracy.png"]
    for name in pngs:
        assert f"]({name})]({name})" in text  # shown, and linked to its full-size file
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    blocks = text.strip().split("\n\n")
    for i, block in enumerate(blocks):  # every plot has its caption right below it
        if block.startswith("[!["):
            assert blocks[i + 1].startswith("*") and blocks[i + 1].endswith("*"), blocks[i + 1]


def test_report_title_names_scenario_strategies_and_seeds(tmp_path):
    a = _run(tmp_path / "a", "sffa", [[1.0, 0.0], [0.9, 0.8]])
    b = _run(tmp_path / "b", "replay", [[0.99, 0.0], [0.7, 0.95]])
    c = _run(tmp_path / "c", "sffa", [[1.0, 0.0], [0.8, 0.8]])
    m = json.loads((c / "metrics.json").read_text())
    (c / "metrics.json").write_text(json.dumps({**m, "seed": 1, "kind": "class_incremental"}))
    text = write_report([a, b, c], tmp_path / "rep").read_text()
    assert text.splitlines()[0] == "# Report: split_x (class_incremental): sffa, replay; seeds 0, 1"
    assert write_report([b], tmp_path / "one").read_text().startswith("# Report: split_x: replay; seed 0\n")


def test_report_plots_anytime_accuracy(tmp_path):
    curve = [{"samples": 10 * i, "experience": i // 3, "accuracy": 0.5 + 0.05 * i} for i in range(1, 7)]
    a = _run(tmp_path / "a", "sffa", [[1.0, 0.0], [0.9, 0.8]])
    m = json.loads((a / "metrics.json").read_text())
    (a / "metrics.json").write_text(json.dumps({**m, "anytime": curve}))
    b = _run(tmp_path / "b", "naive", [[1.0, 0.0], [0.0, 1.0]])  # no anytime curve: not on that chart
    text = write_report([a, b], tmp_path / "rep").read_text()
    assert "[![Anytime accuracy](anytime_accuracy.png)](anytime_accuracy.png)" in text
    assert (tmp_path / "rep" / "anytime_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_report_of_an_adaptation(tmp_path):
    from test_adapt import new_classes_npz

    from conftest import build_run_config
    from ffcl.adapt import adapt_run
    from ffcl.experiment import run_experiment

    src = tmp_path / "src"
    run_experiment(build_run_config("split_digits", "naive", ["scenario.epochs=1", "scenario.n_experiences=2"]), src, quiet=True)
    out = tmp_path / "adapted"
    adapt_run(src, new_classes_npz(tmp_path / "new.npz"), out, quiet=True)
    text = write_report([src, out], tmp_path / "rep").read_text()
    assert "| adapted (naive, seed 0) |" in text


def test_report_of_an_unfinished_run_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    with pytest.raises(RunError, match="not a finished run"):
        write_report([tmp_path / "half"], tmp_path / "rep")
    assert main(["report", str(tmp_path / "half")]) == 2
    assert capsys.readouterr().err.startswith("ffcl: error:")


def test_report_cli_default_location(tmp_path, capsys):
    a = _run(tmp_path / "a", "naive", [[1.0]])
    assert main(["report", str(a)]) == 0
    assert (a / "report" / "report.md").exists()
