"""The documentation site (issue 16, item 5) builds with MkDocs in strict mode: no broken link,
no page outside the navigation, and the generated recipe reference lists every key."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    from ffcl.config import ScenarioConfig, StrategyConfig

    for cls in (ScenarioConfig, StrategyConfig):
        for f in dataclasses.fields(cls):
            assert f"<code>{f.name}</code>" in reference, f.name
    assert "covariance_refresh" in reference and "Set-up" in (tmp_path / "site" / "index.html").read_text()
