"""Every command shown in the README and docs/ is run (issue 16). `ffcl run` and `ffcl compare` are
checked with --dry-run (recipes, overrides, grid, data set and learner valid as written), and so
are the benchmark scripts (`python benchmarks/X.py ... --dry-run`); `ffcl adapt`, `ffcl report`,
`ffcl recipes` and `ffcl data list` run for real, on a small finished run standing in for the
reader's run directories; the install and test commands are the ones .ci/run runs. A command
that reads MNIST, Fashion-MNIST or another real data set carries the ``data`` marker and is
skipped where that data set is absent (.ci/run checks this with Fashion-MNIST hidden)."""

from __future__ import annotations

import re
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import require_data

from ffcl.cli import DEFAULT_SCENARIO, main
from ffcl.config import load_scenario

ROOT = Path(__file__).resolve().parents[1]
# commands about the reader's own files or folders, and those that need a GPU (none here)
PLACEHOLDERS = ("<", "RUN_DIR", "my_", "[--", "OUT/", "--device cuda", "--data-root /data/")


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in page.read_text().splitlines():
            m = re.match(r"\s*(ffcl (?:run|compare)\b.*)", line)
            if not m:
                continue
            command = m.group(1).split("  #")[0].split(" # ")[0].strip()
            if "--resume" in command or any(p in command for p in PLACEHOLDERS):
                continue
            found.append((page.name, command))
    return sorted(set(found))


def needs(command: str) -> list[str]:
    """The data sets a documented command reads: those of the scenario recipes it names and the
    data sets it names; for a benchmark script, its defaults where the command gives none, and
    those its --dry-run check always names."""
    args = shlex.split(command)
    source = (ROOT / args[1]).read_text() if args[0] == "python" else ""
    scenarios = [DEFAULT_SCENARIO] if args[:2] in (["ffcl", "run"], ["ffcl", "compare"]) else []
    datasets: list[str] = []
    for option, into in (("scenario", scenarios), ("scenarios", scenarios), ("datasets", datasets)):
        default = re.search(rf'add_argument\("--{option}", default="([^"]*)"', source)
        value = args[args.index(f"--{option}") + 1] if f"--{option}" in args else default and default.group(1)
        if value:
            into[:] = value.split(",")
    for option, into in (("scenarios", scenarios), ("datasets", datasets)):
        for listed in re.findall(rf'check_benchmark\(.*\b{option}=\[([^\]]*)\]', source):
            into += re.findall(r'"([^"]+)"', listed)
    return sorted({*datasets, *(load_scenario(name).dataset for name in scenarios)})


def _params(commands: list[tuple[str, str]]) -> list:
    """One test case per command, with the ``data`` marker where it reads a real data set."""
    return [pytest.param(page, command, id=command,
                         marks=[pytest.mark.data] if set(needs(command)) - {"digits", "synthetic"} else [])
            for page, command in commands]


COMMANDS = _commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 25


def test_needs_names_the_data_sets_of_commands_and_scripts():
    assert needs("ffcl run") == ["digits"]
    assert needs("ffcl compare --scenario split_fmnist --strategies a,b") == ["fmnist"]
    assert needs("python benchmarks/class_incremental.py --seeds 0") == ["fmnist", "mnist"]  # its default scenarios
    assert needs("python benchmarks/class_incremental.py --scenarios split_mnist --seeds 0") == ["mnist"]
    assert needs("python benchmarks/offline_accuracy.py --datasets fmnist") == ["fmnist"]
    assert needs("python benchmarks/stream_learner.py --out x.json") == ["mnist"]  # named in its check


@pytest.mark.parametrize("page,command", _params(COMMANDS))
def test_documented_command_is_valid(page, command, capsys):
    require_data(*needs(command))
    args = shlex.split(command)[1:]
    rc = main([*args, "--dry-run"])
    out, err = capsys.readouterr()
    assert rc == 0, f"{page}: `{command}`: {err}"
    assert "nothing trained or written" in out


def _shown(pattern: str) -> list[tuple[str, str]]:
    """Shell commands in the pages' code blocks (indented lines, continuations joined) matching ``pattern``."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            m = re.match(rf"    ({pattern}.*)", line)
            if m:
                found.append((page.name, " ".join(m.group(1).split("  #")[0].split(" # ")[0].split())))
    return sorted(set(found))


BENCHMARKS = _shown(r"python benchmarks/")
TOOLS = _shown(r"ffcl (?:adapt|report|recipes|data)\b")
INSTALLS = _shown(r"python -m pip ")


def test_the_docs_show_the_other_commands():
    assert len(BENCHMARKS) >= 8 and len(TOOLS) >= 6 and len(INSTALLS) == 2


@pytest.mark.parametrize("page,command", _params(BENCHMARKS))
def test_documented_benchmark_is_valid(page, command, capsys, monkeypatch):
    require_data(*needs(command))
    script, *args = shlex.split(command)[1:]
    monkeypatch.setattr(sys, "argv", [script, *args, "--dry-run"])
    monkeypatch.syspath_prepend(str((ROOT / script).parent))  # as `python benchmarks/X.py` does: benchmarks/_common.py
    runpy.run_path(str(ROOT / script), run_name="__main__")
    assert "dry run, nothing run or written" in capsys.readouterr().out, f"{page}: `{command}`"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import build_run_config

    from ffcl.experiment import run_experiment

    run_dir = tmp_path_factory.mktemp("docs") / "run"
    run_experiment(build_run_config("split_digits", "replay", ["strategy.plugins.replay.mem_size=100"]), run_dir, quiet=True)
    return run_dir


@pytest.mark.parametrize("page,command", TOOLS, ids=[c for _, c in TOOLS])
def test_documented_tool_command_runs(page, command, finished_run, tmp_path, capsys):
    """Placeholders (RUN_DIR, runs/<run-dir>, OUT/...) become copies of a finished Split-Digits run,
    --data a new-classes .npz of digits images under the name shown, --out a fresh folder; optional
    [groups] are left out."""
    from ffcl.data import load_dataset

    args = shlex.split(re.sub(r"\[[^\]]*\]", "", command))[1:]
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            continue
        if args[i - 1] == "--data" and arg.startswith("npz:"):
            d = load_dataset("digits")
            keep = d.y_test < 2
            np.savez(tmp_path / Path(arg[4:]).name, x=d.x_test[keep].flip(-1).numpy(), y=d.y_test[keep].numpy(),
                     class_names=np.array(["new0", "new1"]))
            args[i] = f"npz:{tmp_path / Path(arg[4:]).name}"
        elif args[i - 1] == "--out":
            args[i] = str(tmp_path / "out")
        elif any(p in arg for p in ("RUN_DIR", "<", "OUT/")):
            copy = tmp_path / f"run{i}"
            shutil.copytree(finished_run, copy)
            args[i] = str(copy)
    rc = main([*args, "--quiet"] if args[0] == "adapt" else args)
    out, err = capsys.readouterr()
    assert rc == 0 and out.strip(), f"{page}: `{command}`: {err}"


def test_the_install_and_test_commands_are_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    for page, command in INSTALLS:
        assert command in ci, f"{page}: `{command}` is not in .ci/run"


def test_the_package_lists_what_the_readme_imports_from_it():
    import ffcl

    assert "StreamLearner" in dir(ffcl) and "StreamLearner" in ffcl.__all__
    assert ffcl.StreamLearner.__name__ == "StreamLearner"
