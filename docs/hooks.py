"""MkDocs hooks: the front page is the README, and the recipe reference is generated from the
config dataclasses and the registered learners and plugins, so neither can drift from the code.
Links written as file names (the README's, readable on GitHub) read as page titles on the site."""

from __future__ import annotations

import dataclasses
import inspect
import posixpath
import re
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - MkDocs' signature
    if page.file.src_uri == "index.md":
        markdown = re.sub(r"<!-- not on the site -->.*?<!-- /not on the site -->\s*", "",
                          (ROOT / "README.md").read_text(), flags=re.S).replace("](docs/", "](")
    if page.file.src_uri == "reference.md":
        markdown = markdown.replace("<!-- generated -->", reference())
    return titled_links(shell_blocks(markdown), page.file.src_uri, _nav_titles(config["nav"]))


SHELL = re.compile(r"    (?:ffcl|python|pip|mkdocs|pytest|git|cd|export|OMP_NUM_THREADS=|B=|\.ci/)\b")
WIDTH = 84  # characters of a code line that show at 1280 px (733 px of code, docs/stylesheets/extra.css)


def wrap_command(line: str, width: int = WIDTH) -> list[str]:
    """A long shell command cut between its options and arguments into lines joined by continuations."""
    if len(line) <= width or line.startswith(" "):  # short, or a continuation already
        return [line]
    if "  #" in line:  # the comment on a line of its own, above the command
        command, comment = line.split("  #", 1)
        return [f"# {comment.strip()}", *wrap_command(command.rstrip(), width)]
    parts: list[str] = []  # an option with its value, or one argument
    for token in line.split(" "):
        if parts and not token.startswith("-") and parts[-1].startswith("--") and " " not in parts[-1]:
            parts[-1] += f" {token}"
        else:
            parts.append(token)
    lines, current = [], parts[0]
    for part in (f" {p}" for p in parts[1:]):
        if len(current) + len(part) > width - 2:
            lines.append(current + " \\")
            current = "   " + part
        else:
            current += part
    return [*lines, current]


def shell_blocks(markdown: str) -> str:
    """Indented code blocks of shell commands (the pages keep each command on one line, which
    tests/test_docs_commands.py runs) are shown as highlighted ``bash`` blocks, long commands cut
    with line continuations."""
    lines, out, i, fenced = markdown.split("\n"), [], 0, False
    while i < len(lines):
        line = lines[i]
        fenced ^= line.lstrip().startswith("```")
        prose_before = i >= 2 and lines[i - 1] == "" and not lines[i - 2].startswith((" ", "- ", "* ")) \
            and not re.match(r"\d+\. ", lines[i - 2])
        if fenced or not SHELL.match(line) or not (i < 2 or prose_before):
            out.append(line)
            i += 1
            continue
        block = []
        while i < len(lines) and (lines[i].startswith("    ") or (lines[i] == "" and lines[i + 1:i + 2] != []
                                                                   and lines[i + 1].startswith("    "))):
            block.append(lines[i][4:])
            i += 1
        out += ["```bash", *[part for command in block for part in  # lines cut in the page stay as they are
                             (wrap_command(command) if not command.endswith("\\") else [command])], "```"]
    return "\n".join(out)


def _nav_titles(nav: list) -> dict[str, str]:  # noqa: ANN001
    """Each page's title in the navigation, by its path under docs/."""
    titles: dict[str, str] = {}
    for item in nav:
        for title, value in (item.items() if isinstance(item, dict) else []):
            titles.update(_nav_titles(value) if isinstance(value, list) else {value: title})
    return titles


def _slug(text: str) -> str:
    """The anchor Python-Markdown's toc gives a heading."""
    text = re.sub(r"[^\w\s-]", "", re.sub(r"`|\*\*", "", text)).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def titled_links(markdown: str, src_uri: str, titles: dict[str, str]) -> str:
    """Links whose text is the file they point to (``[replay_free.md](replay_free.md)``) read as the page's
    title instead, and its section's when the link has an anchor."""

    def title(match: re.Match) -> str:
        target = match.group("target")
        path, _, anchor = target.partition("#")
        uri = posixpath.normpath(posixpath.join(posixpath.dirname(src_uri), path))
        if uri not in titles:
            return match.group(0)
        text = titles[uri]
        if anchor:
            for heading in re.findall(r"^#{2,6} (.+)$", (ROOT / "docs" / uri).read_text(), flags=re.M):
                if _slug(heading) == anchor:
                    text += f": {heading.replace('**', '')}"
                    break
        return f"[{text}]({target})"

    return re.sub(r"\[`?(?:docs/)?[\w./-]+\.md(?:#[\w-]*)?`?\]\((?P<target>[\w./-]+\.md(?:#[\w-]*)?)\)", title, markdown)


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
