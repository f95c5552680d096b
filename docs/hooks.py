"""MkDocs hooks: the front page is the README, and the recipe reference is generated from the
config dataclasses and the registered learners and plugins, so neither can drift from the code."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - MkDocs' signature
    if page.file.src_uri == "index.md":
        return (ROOT / "README.md").read_text().replace("](docs/", "](")
    if page.file.src_uri == "reference.md":
        return markdown.replace("<!-- generated -->", reference())
    return markdown


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{f.default_factory()!r}`"  # type: ignore[misc]
    return "required"


def _table(cls: type) -> str:
    hints = typing.get_type_hints(cls)
    rows = [f"| `{f.name}` | `{_type(hints[f.name])}` | {_default(f)} |" for f in dataclasses.fields(cls)]
    return "\n".join(["| key | type | default |", "|---|---|---|", *rows])


def _type(t: object) -> str:
    return getattr(t, "__name__", None) if isinstance(t, type) else str(t).replace("typing.", "")


def _arguments(factory) -> str:  # noqa: ANN001
    params = list(inspect.signature(factory).parameters.values())[1:]  # after the build context
    return ", ".join(f"`{p.name}` ({'required' if p.default is inspect.Parameter.empty else repr(p.default)})"
                     for p in params) or "none"


def _registry(title: str, registry: dict) -> str:
    rows = [f"| `{name}` | {_arguments(factory)} |" for name, factory in sorted(registry.items())]
    return "\n".join([f"| {title} | arguments (default) |", "|---|---|", *rows])


def reference() -> str:
    from ffcl.config import RunConfig, ScenarioConfig, StrategyConfig
    from ffcl.strategies import LEARNERS, PLUGINS
    from ffcl.strategies import augment, baselines, df, ff, finetune, gaussian, genclass, schedules, sffa  # noqa: F401  (register them)

    return "\n\n".join([
        "## Scenario recipes (`scenarios/*.toml`)", _table(ScenarioConfig),
        "## Strategy recipes (`strategies/*.toml`)", _table(StrategyConfig),
        "## A run (`config.json`; the options of `ffcl run`)", _table(RunConfig),
        "## Learners (`learner = ...`; their arguments under `[learner_args]`)", _registry("learner", LEARNERS),
        "## Plugins (`[plugins.NAME]`)", _registry("plugin", PLUGINS),
    ])
