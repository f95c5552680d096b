"""Recipes: TOML files that say what stream to learn from and which learner learns it.

A scenario recipe (``scenarios/*.toml``) becomes a :class:`ScenarioConfig`, a strategy recipe
(``strategies/*.toml``) a :class:`StrategyConfig`. A bare name such as ``split_mnist`` resolves to
the recipe shipped with ffcl (the repository's top-level folders, or the copy inside an installed
wheel); anything ending in ``.toml`` is read as a path. Every key is validated: an unknown key, a
wrong type or an unknown name is a :class:`ConfigError` with a one-line message saying what to
change.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field, replace
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "ScenarioConfig",
    "StrategyConfig",
    "RunConfig",
    "recipe_dirs",
    "list_recipes",
    "load_scenario",
    "load_strategy",
    "resolve_recipe",
    "show_recipe",
    "to_toml",
    "apply_overrides",
    "from_dict",
    "to_dict",
]

SCENARIO_KINDS = ("class_incremental", "task_incremental", "domain_incremental", "joint", "drift")
INCREMENTAL_KINDS = SCENARIO_KINDS[:3]  # the three types of incremental learning (ffcl.data.streams.KINDS)
HEADS = ("masked", "multi")  # task-incremental outputs (ffcl.strategies.heads)
DRIFTS = ("rotate", "noise")
EVALUATIONS = ("all", "seen")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")
LOGGERS = ("tensorboard", "wandb", "csv")  # Avalanche's loggers a run can add (ffcl.loggers)
NETS = ("mlp", "vgg", "resnet", "mobilenet")  # ffcl.nn.conv.NETS (not imported here: config loads without torch)
NAMED_NETS = {  # the seed papers' architectures as a net and its stage widths (seeds/001, seeds/004)
    "vgg6": ("vgg", [128, 128, 256, 256, 256, 512]),  # the Trifecta's "small" net
    "resnet18": ("resnet", [64, 64, 128, 128, 256, 256, 512, 512]),
    "mobilenetv3s": ("mobilenet", [16, 24, 24, 40, 40, 40, 48, 48, 96, 96, 96]),
}


class ConfigError(ValueError):
    """A recipe or an override is invalid; the message says what to change."""


@dataclass
class ScenarioConfig:
    """What stream to learn from.

    ``kind="class_incremental"`` splits the classes into ``n_experiences`` groups (Avalanche's
    ``class_incremental_benchmark``); ``kind="task_incremental"`` makes each group a task whose label
    every sample carries at training and test time (the learner predicts among the task's classes);
    ``kind="domain_incremental"`` relabels each group's classes by their position in it, so every
    experience shares one label set and no task label is given (van de Ven et al., NMI 2022).
    ``permuted = true`` makes the experiences ``n_experiences`` fixed pixel permutations of the whole
    data set instead (Permuted MNIST; the first is the identity), posed in any of those three kinds
    (class-incremental: a new set of classes per permutation). ``kind="joint"`` is one experience holding every class, the
    upper bound; ``classes_per_experience`` (e.g. ``[3, 2, 2, 2, 1]``) gives uneven experiences
    and sets ``n_experiences`` to its length; ``kind="drift"`` keeps every class in every experience and shifts the inputs
    instead: the training set is cut into ``n_experiences`` parts, part i rotated by
    ``drift_strength * i / (n - 1)`` degrees (``drift="rotate"``) or given Gaussian noise of that
    standard deviation (``drift="noise"``), and test experience i is the test set under the same
    shift. ``online=true`` shows every training sample once, in minibatches of
    ``online_batch_size`` (one update each, no epochs); ``online_experience_size`` further cuts
    each experience into Avalanche online mini-experiences of that many samples
    (``split_online_stream``), for plugins that should act within an experience.
    ``anytime_every`` evaluates, every that many training samples, the accuracy on the test data
    of the experiences seen so far (at most ``anytime_test_size`` test samples of each).
    Online scenarios also measure prequential (test-then-train) accuracy: each arriving minibatch
    is scored before the update, cumulatively and over the last ``prequential_window`` samples.
    ``evaluate`` says what is evaluated after each experience: ``"all"`` every test experience
    (Avalanche's ``eval(test_stream)``; the untrained learner too, so forward transfer is measured)
    or ``"seen"`` those trained so far (``eval(test_stream[:i + 1])``): about half the evaluation
    of a long stream, with the entries of experiences not yet seen left empty (``null``) and
    forward transfer not measured.
    ``epochs`` and ``batch_size``, when set, replace the strategy's: the training budget belongs to
    the data set (as in Mammoth's dataset classes), so a small data set can ask for more epochs.
    ``net`` and ``hidden``, when set, are the data set's network (e.g. a ``vgg`` net for CIFAR): a
    strategy recipe on an MLP whose learner trains a network (back-propagation and FF learners)
    trains this one instead; a recipe that names a conv net keeps its own, and learners without a
    network of that kind (``slda``, ``ncm``, ``replay_free``, ``genclass``) are not affected.
    """

    dataset: str = "digits"
    kind: str = "class_incremental"
    n_experiences: int = 5
    class_order: list[int] | None = None
    classes_per_experience: list[int] | None = None
    shuffle_classes: bool = False
    permuted: bool = False
    online: bool = False
    online_batch_size: int = 10
    online_experience_size: int | None = None
    drift: str = "rotate"
    drift_strength: float = 90.0
    anytime_every: int | None = None
    anytime_test_size: int = 500
    prequential_window: int = 1000
    evaluate: str = "all"
    epochs: int | None = None
    batch_size: int | None = None
    net: str | None = None
    hidden: list[int] | None = None
    data_root: str | None = None
    description: str = ""

    def validate(self, where: str) -> None:
        _choice(where, "kind", self.kind, SCENARIO_KINDS)
        _positive(where, "n_experiences", self.n_experiences)
        _positive(where, "online_batch_size", self.online_batch_size)
        _choice(where, "drift", self.drift, DRIFTS)
        _choice(where, "evaluate", self.evaluate, EVALUATIONS)
        _positive(where, "anytime_test_size", self.anytime_test_size)
        _positive(where, "prequential_window", self.prequential_window)
        if not math.isfinite(self.drift_strength) or self.drift_strength < 0:
            raise ConfigError(f"{where}: 'drift_strength' must be a finite number >= 0, got {self.drift_strength}")
        for key in ("epochs", "batch_size", "online_experience_size", "anytime_every"):
            if getattr(self, key) is not None:
                _positive(where, key, getattr(self, key))
        if self.net is not None:
            _choice(where, "net", self.net, NETS[1:])
            if not self.hidden or any(h <= 0 for h in self.hidden):
                raise ConfigError(f"{where}: a scenario that sets 'net' needs its stage widths too, e.g. hidden = [32, 64, 128]")
        elif self.hidden is not None:
            raise ConfigError(f"{where}: 'hidden' goes with 'net' (the data set's conv net); set both or neither")
        for key, applies in (("drift", self.kind == "drift"), ("drift_strength", self.kind == "drift"),
                             ("online_batch_size", self.online), ("online_experience_size", self.online),
                             ("prequential_window", self.online), ("anytime_test_size", self.anytime_every is not None),
                             ("evaluate", self.kind != "joint")):
            if not applies and getattr(self, key) != _DEFAULTS[key]:
                who = {"drift": 'kind = "drift"', "drift_strength": 'kind = "drift"',
                       "anytime_test_size": "scenarios that set anytime_every",
                       "evaluate": "streams of several experiences (a joint run's one experience is all there is)"}.get(key, "online = true")
                raise ConfigError(f"{where}: scenario.{key} is not used by this scenario ({self.kind}"
                                  f"{', online' if self.online else ''}); it applies to {who}: drop it")
        if self.kind == "joint" and self.n_experiences != 1:
            self.n_experiences = 1
        if self.classes_per_experience is not None:
            if not self.classes_per_experience or any(n < 1 for n in self.classes_per_experience):
                raise ConfigError(f"{where}: 'classes_per_experience' must list positive class counts, got {self.classes_per_experience}")
            self.n_experiences = len(self.classes_per_experience)
        if self.permuted:
            if self.kind not in INCREMENTAL_KINDS:
                raise ConfigError(f"{where}: 'permuted' experiences are posed as one of {', '.join(INCREMENTAL_KINDS)}; "
                                  f"not '{self.kind}'")
            if self.class_order is not None or self.classes_per_experience is not None or self.shuffle_classes:
                raise ConfigError(f"{where}: a permuted stream has every class in every permutation; "
                                  "drop class_order, classes_per_experience and shuffle_classes")
        if self.class_order is not None and self.shuffle_classes:
            raise ConfigError(f"{where}: give either 'class_order' or 'shuffle_classes = true', not both")


@dataclass
class StrategyConfig:
    """Which learner learns, with which network, optimiser and plugins.

    ``learner`` names a registered learner (a strategy template and its network, see
    ``ffcl.strategies``); ``learner_args`` are its own arguments; ``plugins`` maps registered
    plugin names (``ewc``, ``replay``, ...) to their arguments, so one recipe composes a learner
    with Avalanche plugins.

    ``net`` is the network the learner trains: ``mlp`` (``hidden`` lists the layer widths) or a
    convolutional net, ``vgg``, ``resnet`` or ``mobilenet`` (``hidden`` lists the stages' channels;
    ``ffcl.nn.conv``), for the back-propagation learners and the FF learners alike. On a conv net an
    FF learner's label enters as a learned plane (the label-code and k-WTA arguments are MLP-only),
    and ``stages_per_block`` conv stages make one unit of local learning (back-propagation inside
    it, nothing across; seeds/004's block-local hybrid training); back-propagation learners train
    the whole net as one block whatever it says.

    ``head`` is the output in task-incremental scenarios (ffcl.strategies.heads): ``masked`` (one
    output per class, those outside the sample's task masked out, in training and at test; every
    learner) or ``multi`` (Avalanche's ``MultiHeadClassifier``, one head per task; back-propagation
    learners). ``multi`` needs task labels.
    """

    learner: str = "mlp"
    net: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [400, 400])
    stages_per_block: int = 1
    epochs: int = 1
    batch_size: int = 128
    eval_batch_size: int = 1024
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    head: str = "masked"
    learner_args: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    loggers: list[str] = field(default_factory=list)  # tensorboard, wandb, csv (ffcl.loggers); results do not depend on them
    description: str = ""

    def validate(self, where: str) -> None:
        _choice(where, "optimizer", self.optimizer, OPTIMIZERS)
        _choice(where, "head", self.head, HEADS)
        if self.net in NAMED_NETS:
            net, widths = NAMED_NETS[self.net]
            raise ConfigError(f"{where}: the {self.net} architecture is net = \"{net}\" with hidden = {widths} (the stage widths); "
                              "set those two instead")
        _choice(where, "net", self.net, NETS)
        for key in ("epochs", "batch_size", "eval_batch_size", "stages_per_block"):
            _positive(where, key, getattr(self, key))
        if self.stages_per_block != 1 and self.net == "mlp":
            raise ConfigError(f"{where}: 'stages_per_block' groups the stages of a conv net; set net to vgg, resnet or mobilenet, "
                              "or leave it at 1 (an MLP's local blocks are its layers)")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"{where}: 'lr' must be a finite number > 0, got {self.lr}")
        for key in ("momentum", "weight_decay"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}: '{key}' must be a finite number >= 0, got {value}")
        if self.momentum and self.optimizer != "sgd":
            raise ConfigError(f"{where}: strategy.momentum is not used by the {self.optimizer} optimizer; it applies to "
                              f"optimizer = \"sgd\": drop it or switch optimizer")
        if any(h <= 0 for h in self.hidden):
            raise ConfigError(f"{where}: 'hidden' sizes must be positive, got {self.hidden}")
        for name, args in self.plugins.items():
            if not isinstance(args, dict):
                raise ConfigError(f"{where}: plugin '{name}' needs a table of arguments ([plugins.{name}])")
        for name in self.loggers:
            _choice(where, "loggers", name, LOGGERS)
        repeated = sorted({n for n in self.loggers if self.loggers.count(n) > 1})
        if repeated:
            raise ConfigError(f"{where}: 'loggers' names {', '.join(repeated)} more than once; name each once")


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ScenarioConfig)}


@dataclass
class RunConfig:
    """One run: a scenario, a strategy, a seed and a device; ``threads`` (torch's intra-op
    threads; None: torch's default) and ``deterministic`` (torch's deterministic algorithms)."""

    scenario: ScenarioConfig
    strategy: StrategyConfig
    scenario_name: str = "split_digits"
    strategy_name: str = "sffa"
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    deterministic: bool = False

    def validate(self) -> None:
        _choice("run", "device", self.device, DEVICES)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"the seed must be an integer from 0 to 2**32 - 1, got {self.seed}")
        self.scenario.validate(f"scenario '{self.scenario_name}'")
        self.strategy.validate(f"strategy '{self.strategy_name}'")
        if self.strategy.head == "multi" and self.scenario.kind != "task_incremental":
            raise ConfigError(f"strategy '{self.strategy_name}': head = \"multi\" has one head per task and needs task labels; "
                              f"scenario '{self.scenario_name}' is {self.scenario.kind}: drop it or use a task_incremental scenario")


# --------------------------------------------------------------------------- recipe files


def recipe_dirs(kind: str) -> list[Path]:
    """Folders searched for ``kind`` ('scenarios' or 'strategies') recipes, in order."""
    package = Path(__file__).resolve().parent
    return [p for p in (package.parent / kind, package / "_recipes" / kind) if p.is_dir()]


def list_recipes(kind: str) -> list[str]:
    """Names of the recipes shipped with ffcl."""
    return sorted({p.stem for d in recipe_dirs(kind) for p in d.glob("*.toml")})


def _find_recipe(kind: str, name: str) -> Path:
    if name.endswith(".toml"):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"recipe file '{name}' does not exist")
        return path
    for folder in recipe_dirs(kind):
        path = folder / f"{name}.toml"
        if path.is_file():
            return path
    known = ", ".join(list_recipes(kind)) or "none"
    singular = {"scenarios": "scenario", "strategies": "strategy"}[kind]
    raise ConfigError(f"unknown {singular} '{name}'; choose one of: {known} (or give a path to a .toml file)")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None


def resolve_recipe(kind: str, name: str) -> dict[str, Any]:
    """The table of recipe ``name`` with its ``extends`` chain applied: ``extends = "BASE"`` (a
    shipped name, or a .toml path relative to the extending file) starts from BASE's resolved
    table and overrides it key by key, nested tables (``learner_args``, ``plugins.NAME``) included."""
    return _resolve(kind, name, [])


def _resolve(kind: str, name: str, chain: list[Path]) -> dict[str, Any]:
    path = _find_recipe(kind, name)
    data = _read_toml(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: 'extends' must name a recipe, e.g. extends = \"replay_free\"; got {base!r}")
    here = path.resolve()
    if here in chain:
        cycle = " -> ".join(p.stem for p in chain[chain.index(here):] + [here])
        raise ConfigError(f"{path}: 'extends' makes a cycle ({cycle}); one recipe of it must not extend another")
    if base.endswith(".toml") and not Path(base).is_absolute():
        base = str(path.parent / base)
    try:
        parent = _resolve(kind, base, chain + [here])
    except ConfigError as err:
        if "'extends'" in str(err) or "extends =" in str(err):  # said by the recipe further up the chain
            raise
        raise ConfigError(f"{path}: extends = \"{base}\": {err}") from None
    return _merge(parent, data)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys on top; a table in both is merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_scenario(name: str) -> ScenarioConfig:
    """Read and validate a scenario recipe by name or path (its ``extends`` chain resolved)."""
    where = str(_find_recipe("scenarios", name))
    cfg = from_dict(ScenarioConfig, resolve_recipe("scenarios", name), where)
    cfg.validate(where)
    return cfg


def load_strategy(name: str) -> StrategyConfig:
    """Read and validate a strategy recipe by name or path (its ``extends`` chain resolved)."""
    where = str(_find_recipe("strategies", name))
    cfg = from_dict(StrategyConfig, resolve_recipe("strategies", name), where)
    cfg.validate(where)
    return cfg


def show_recipe(name: str, defaults: Callable[[StrategyConfig], dict[str, Any]] | None = None) -> str:
    """Recipe ``name`` (a shipped strategy or scenario, or a .toml path of either) resolved and
    validated, every key filled in, as TOML (``ffcl recipes --show``). ``defaults(config)`` gives
    the learner's and plugins' argument defaults the recipe leaves unset (``{"learner_args": {...},
    "plugins": {NAME: {...}}}``); they are shown as comments, so the text loads back to the recipe."""
    strategy = name in list_recipes("strategies") or (name.endswith(".toml") and "learner" in resolve_recipe("strategies", name))
    if not strategy and name not in list_recipes("scenarios") and not name.endswith(".toml"):
        raise ConfigError(f"unknown recipe '{name}'; choose one of: {', '.join(list_recipes('strategies') + list_recipes('scenarios'))} "
                          "(or give a path to a .toml file)")
    cfg = load_strategy(name) if strategy else load_scenario(name)
    unset = defaults(cfg) if strategy and defaults else {}
    return f"# {'strategy' if strategy else 'scenario'} {name}, resolved\n" + to_toml(to_dict(cfg), unset)


def to_toml(data: dict[str, Any], defaults: dict[str, Any] | None = None) -> str:
    """A resolved recipe (``to_dict`` of a config) as TOML text that loads back to the same recipe:
    plain keys first, then one ``[table]`` per nested table; keys whose value is None (unset) are
    left out, since TOML has no null. ``defaults`` (the same nesting) are written as comments
    under their table, for the keys it does not set."""
    first = sorted(data, key=lambda k: k != "description")  # the description first, as in the shipped recipes
    lines = [f"{k} = {_toml_value(data[k])}" for k in first if data[k] is not None and not isinstance(data[k], dict)]
    for key, value in data.items():
        if isinstance(value, dict) and (value or (defaults or {}).get(key)):
            lines.extend(_toml_table(key, value, (defaults or {}).get(key) or {}))
    return "\n".join(lines) + "\n"


def _toml_table(name: str, table: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
    nested = {k: v for k, v in table.items() if isinstance(v, dict)}
    unset = {k: v for k, v in defaults.items() if k not in table and v is not None and not isinstance(v, dict)}
    out = ["", f"[{name}]"] if plain or unset or not nested else []
    out += [f"{k} = {_toml_value(v)}" for k, v in plain.items() if v is not None]
    out += [f"# {k} = {_toml_value(v)}  (default)" for k, v in unset.items()]
    for key, value in nested.items():
        out.extend(_toml_table(f"{name}.{key}", value, defaults.get(key) or {}))
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return ("-" if v < 0 else "") + ("inf" if math.isinf(v) else "nan")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    raise ConfigError(f"a recipe value must be a number, string, bool, list or table, got {type(v).__name__}")


# --------------------------------------------------------------------------- overrides


def _parse_value(text: str) -> Any:
    """A ``--set`` value is read as a TOML value (``3``, ``1e-3``, ``[400, 400]``, ``true``), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(run: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.key=value`` overrides, e.g. ``strategy.epochs=3`` or ``strategy.plugins.replay.mem_size=200``."""
    data = to_dict(run)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or parts[0] not in ("scenario", "strategy"):
            raise ConfigError(
                f"--set '{item}': write section.key=value with section 'scenario' or 'strategy', e.g. strategy.epochs=3"
            )
        target = data[parts[0]]
        for part in parts[1:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set '{item}': '{part}' is not a table")
        target[parts[-1]] = _parse_value(value.strip())
    new = replace(run, scenario=from_dict(ScenarioConfig, data["scenario"], "--set scenario"),
                              strategy=from_dict(StrategyConfig, data["strategy"], "--set strategy"))
    new.validate()
    return new


# --------------------------------------------------------------------------- dataclass <-> dict


def to_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass as a plain dict (JSON/TOML friendly)."""
    return dataclasses.asdict(obj)


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data``, checking keys and types (one-line errors)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key '{key}'; known keys: {', '.join(names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{where}.{key}")
        else:
            kwargs[key] = check_type(value, hint, f"{where}: '{key}'")
    return cls(**kwargs)


def check_type(value: Any, hint: Any, what: str) -> Any:
    """Return ``value`` if it matches ``hint`` (ints are accepted for floats), else raise ConfigError."""
    if _matches(value, hint):
        return float(value) if hint is float else value
    raise ConfigError(f"{what} must be {_hint_name(hint)}, got {type(value).__name__} {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(
            hint.__name__, hint.__name__
        )
    return str(hint).replace("typing.", "")


def _choice(where: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: '{key}' must be one of {', '.join(choices)}; got '{value}'")


def _positive(where: str, key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{where}: '{key}' must be >= 1, got {value}")
