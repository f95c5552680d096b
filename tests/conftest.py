"""Shared fixtures: a fresh run directory, a builder for small, fast run configs,
:func:`require_data`, which skips a test whose real data set is not on this machine, and
:func:`interrupt_at`, which stops a run part-way as Ctrl-C would."""

from __future__ import annotations

import functools
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
import ffcl.experiment  # noqa: E402,F401  (torch and Avalanche, imported once)
from ffcl.metrics.memory import freeze_imported_objects  # noqa: E402

freeze_imported_objects()  # every run collects garbage after each experience: not through the modules' objects

SMALL = ["strategy.hidden=[32]"]
BUILT_IN = ("digits", "synthetic")  # data that every installation has


@functools.cache
def data_available(name: str) -> bool:
    """Whether the named data set loads here (from the data root, its cache or the system folders)."""
    from ffcl.data import DataError, load_dataset

    try:
        load_dataset(name)
    except DataError:
        return False
    return True


def require_data(*names: str) -> None:
    """Skip the calling test unless every named data set is on this machine (docs/data.md says how
    to get them); tests that call it carry the ``data`` marker."""
    missing = [n for n in dict.fromkeys(names) if n not in BUILT_IN and not data_available(n)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, which is not on this machine (docs/data.md)")


def interrupt_at(monkeypatch: pytest.MonkeyPatch, experience: int, *, online: bool = False,
                 error: type[BaseException] = KeyboardInterrupt) -> None:
    """Make training raise ``error`` (KeyboardInterrupt, as Ctrl-C would) once, when it reaches
    ``experience``; with ``online``, part-way through that experience (after its first
    mini-experience). Joint training, whose one ``train`` call takes the whole stream, is cut there."""
    from avalanche.training import JointTraining
    from avalanche.training.templates import SupervisedTemplate

    raised: list[int] = []

    def cut(original: Callable) -> Callable:
        def train(self, exp, *args, **kwargs):
            index = exp.origin_experience.current_experience if online else getattr(exp, "current_experience", experience)
            if not raised and index == experience and (not online or not exp.is_first_subexp):
                raised.append(index)
                raise error
            return original(self, exp, *args, **kwargs)
        return train

    for template in (SupervisedTemplate, JointTraining):  # JointTraining has a train() of its own
        monkeypatch.setattr(template, "train", cut(template.train))


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
