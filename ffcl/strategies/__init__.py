"""Strategies: Avalanche templates for local learners, and the baselines, built from recipes."""

from .registry import LEARNERS, PLUGINS, BuildContext, build_strategy, register_learner, register_plugin

__all__ = ["LEARNERS", "PLUGINS", "BuildContext", "build_strategy", "register_learner", "register_plugin"]
