"""Every command shown in the README and docs/ is run (issue 16). `ffcl run` and `ffcl compare` are
checked with --dry-run (recipes, overrides, grid, data set and learner valid as written), and so
are the benchmark scripts (`python benchmarks/X.py ... --dry-run`); `ffcl adapt`, `ffcl report`,
`ffcl recipes` and `ffcl data list` run for real, on a small finished run standing in for the
reader's run directories; the install and test commands are the ones .ci/run runs."""

from __future__ import annotations

import re
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ffcl.cli import main

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


COMMANDS = _commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 25


@pytest.mark.parametrize("page,command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_is_valid(page, command, capsys):
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


@pytest.mark.parametrize("page,command", BENCHMARKS, ids=[c for _, c in BENCHMARKS])
def test_documented_benchmark_is_valid(page, command, capsys, monkeypatch):
    script, *args = shlex.split(command)[1:]
    monkeypatch.setattr(sys, "argv", [script, *args, "--dry-run"])
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
