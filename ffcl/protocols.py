"""What a run needs from a learner's model, its strategy and its plugins, written down.

The run (ffcl.experiment, ffcl.loop) and the learner file (ffcl.learner_file) depend only on these
``typing.Protocol``\\s, never on class names: a new learner or plugin takes part by having the
method, and nothing in the run changes.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["KeepsBytes", "RunSummary", "ResolvesRecipe", "LearnerFileState"]


@runtime_checkable
class KeepsBytes(Protocol):
    """A model that keeps per-class state instead of images (``metrics.json``'s ``kept_bytes``)."""

    def kept_bytes(self) -> dict[str, int]:
        """Bytes kept per class and bytes shared by all classes."""
        ...


@runtime_checkable
class RunSummary(Protocol):
    """A plugin whose state after each experience goes into ``metrics.json`` (e.g. neuron
    allocation's neurons per class, under ``allocation``)."""

    def run_summary(self) -> dict[str, Any]:
        """Top-level ``metrics.json`` fields (JSON values)."""
        ...


@runtime_checkable
class ResolvesRecipe(Protocol):
    """A plugin that settles some of its recipe arguments only when it is attached (neuron
    allocation's ``max_classes``): the learner file records the settled values, so that a rebuilt
    learner is built alike."""

    recipe_key: str  # its name under the recipe's ``plugins``

    def resolved_args(self) -> dict[str, Any]:
        """The arguments as settled, to replace those in the recipe."""
        ...


@runtime_checkable
class LearnerFileState(Protocol):
    """A strategy with counters that its model's ``state_dict`` does not hold (how many experiences
    have trained a Gaussian learner's features): saved in ``learner.pt``'s ``strategy_state``."""

    def learner_state(self) -> dict[str, int]:
        """The counters, by name."""
        ...

    def load_learner_state(self, state: dict[str, int]) -> None:
        """Restore counters saved by :meth:`learner_state` (unknown names are ignored)."""
        ...
