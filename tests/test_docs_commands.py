"""Every `ffcl run` and `ffcl compare` command shown in the README and docs/ is checked with
--dry-run: its recipes, overrides, grid, data set and learner are valid as written (issue 16:
every command shown in the documentation is run by a test)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from ffcl.cli import main

ROOT = Path(__file__).resolve().parents[1]
# commands about the reader's own files or folders, and those that need a GPU (none here)
PLACEHOLDERS = ("<", "RUN_DIR", "my_", "[--", "OUT/", "--device cuda")


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
