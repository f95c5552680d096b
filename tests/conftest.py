"""Shared fixtures: a fresh run directory and a builder for small, fast run configs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) on an uninstalled checkout
    sys.path.insert(0, str(ROOT))

# The networks are tiny: one intra-op thread is far faster than two threads fighting over two cores
# (and keeps the timings of parallel test runs stable).
torch.set_num_threads(1)

from ffcl.config import RunConfig, apply_overrides, load_scenario, load_strategy  # noqa: E402

SMALL = ["strategy.hidden=[32]"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A path for a run directory that does not exist yet."""
    return tmp_path / "run"


def build_run_config(
    scenario: str = "split_digits",
    strategy: str = "naive",
    overrides: list[str] | None = None,
    seed: int = 0,
) -> RunConfig:
    """A validated RunConfig from shipped recipes, on the CPU, small network unless overridden."""
    cfg = RunConfig(
        scenario=load_scenario(scenario),
        strategy=load_strategy(strategy),
        scenario_name=scenario,
        strategy_name=strategy,
        seed=seed,
        device="cpu",
    )
    return apply_overrides(cfg, SMALL + list(overrides or []))


@pytest.fixture
def make_config() -> Callable[..., RunConfig]:
    """``make_config(scenario, strategy, overrides, seed)``: see :func:`build_run_config`."""
    return build_run_config


@pytest.fixture(autouse=True, scope="session")
def _trust_registry(tmp_path_factory):
    """Checkpoints the tests write are recorded in a registry of their own, not the user's (ffcl.trust)."""
    import os

    os.environ["FFCL_TRUST_FILE"] = str(tmp_path_factory.mktemp("trust") / "trusted_checkpoints.txt")
    yield
