"""Registries of learners and plugins, and the one factory that builds a strategy from a recipe.

A *learner* is an Avalanche strategy template together with its network (``mlp`` is Avalanche's
``Naive`` template on a back-propagation MLP; the FF learners register here too). A *plugin* is
an Avalanche plugin (``ewc``, ``replay``, ...). A strategy recipe names one learner and any
number of plugins, so "EWC" is ``learner = "mlp"`` plus ``[plugins.ewc]`` and "SFFA + replay" is
``learner = "sffa"`` plus ``[plugins.replay]``: behaviour is added by plugins, not by new loops.

Each factory takes a :class:`BuildContext` first and its own keyword arguments after it; those
arguments are what a recipe may set, and they are validated against the factory's signature.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from avalanche.models import MultiTaskModule
from avalanche.training.templates import SupervisedTemplate

from ..config import ConfigError, StrategyConfig, check_type
from ..nn import MLP
from ..nn.conv import ConvNet
from ..nn.conv_ff import ConvFFNet
from ..nn.ff import FFNet
from ..objectives import Objective
from .heads import MultiHeadNet, TaskMask

__all__ = [
    "BuildContext",
    "LEARNERS",
    "PLUGINS",
    "register_learner",
    "takes_net",
    "register_plugin",
    "load_extensions",
    "build_strategy",
]

LearnerFactory = Callable[..., SupervisedTemplate]
PluginFactory = Callable[..., SupervisedPlugin]
LEARNERS: dict[str, LearnerFactory] = {}
PLUGINS: dict[str, PluginFactory] = {}


NET_LEARNERS: set[str] = set()  # learners that train the recipe's ``net`` (a scenario's default net applies to them)


@dataclass(frozen=True)
class LearnerOptions:
    """Which of a learner's arguments apply where (:func:`register_learner`)."""

    mlp_only: tuple[str, ...] = ()  # used on an MLP only (label codes, k-WTA): refused on a conv net
    not_used: dict[str, str] = field(default_factory=dict)  # FF template options it never uses -> why
    local_blocks: bool = False  # reads ``stages_per_block`` (FF learners on conv nets)


LEARNER_OPTIONS: dict[str, LearnerOptions] = {}


def register_learner(name: str, *, takes_net: bool = False, template: dict[str, Any] | None = None,
                     mlp_only: Iterable[str] = (), not_used: dict[str, str] | None = None,
                     local_blocks: bool = False) -> Callable[[LearnerFactory], LearnerFactory]:
    """Decorator: make a learner factory ``f(ctx, **args) -> SupervisedTemplate`` available to recipes.
    ``takes_net``: the learner trains ``ctx.bp_net()`` or ``ctx.ff_net()``, so any ``net`` suits it.

    An FF learner (one that builds an :class:`~ffcl.strategies.ff_template.FFTemplate`) gives
    ``template``, its own defaults for the template's options (``TEMPLATE_OPTIONS``), and takes
    ``**template`` itself: it then accepts every template option but those in ``not_used``
    (option -> why), with the template's types and its defaults. ``mlp_only`` names the arguments
    that reach only an MLP's constructor, refused on a conv net; ``local_blocks``: the learner reads
    ``stages_per_block`` (refused for the others)."""

    def wrap(fn: LearnerFactory) -> LearnerFactory:
        LEARNERS[name] = fn
        (NET_LEARNERS.add if takes_net else NET_LEARNERS.discard)(name)
        refused = dict(not_used or {})
        if template is not None:
            fn.__signature__ = _with_template_options(fn, template, refused)  # type: ignore[attr-defined]
        LEARNER_OPTIONS[name] = LearnerOptions(tuple(mlp_only), refused, local_blocks)
        return fn

    return wrap


def _with_template_options(fn: LearnerFactory, defaults: dict[str, Any], not_used: dict[str, str]) -> inspect.Signature:
    """``fn``'s signature with its ``**template`` replaced by the FF template's options it uses
    (the template's annotations, the table's defaults overridden by the learner's)."""
    from .ff_template import TEMPLATE_OPTIONS, template_signature

    unknown = set(defaults) - set(TEMPLATE_OPTIONS) or set(not_used) - set(TEMPLATE_OPTIONS)
    if unknown:
        raise TypeError(f"{fn.__name__}: {sorted(unknown)} are not FF template options ({', '.join(TEMPLATE_OPTIONS)})")
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    annotations = template_signature()
    extra = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(key, default),
                               annotation=annotations[key])
             for key, default in TEMPLATE_OPTIONS.items() if key not in not_used and key not in {p.name for p in own}]
    return sig.replace(parameters=own + extra)


def takes_net(learner: str) -> bool:
    """Whether a registered learner trains the recipe's ``net`` (False for unknown names)."""
    _load_builtins()
    load_extensions()
    return learner in NET_LEARNERS


def _load_builtins() -> None:
    from . import augment, baselines, dc, df, ff, finetune, gaussian, genclass, randumb, schedules, sff, sffa, trifecta  # noqa: F401  (register the built-in learners and plugins)


def register_plugin(name: str) -> Callable[[PluginFactory], PluginFactory]:
    """Decorator: make a plugin factory ``f(ctx, **args) -> SupervisedPlugin`` available to recipes."""

    def wrap(fn: PluginFactory) -> PluginFactory:
        PLUGINS[name] = fn
        return fn

    return wrap


@dataclass
class BuildContext:
    """What every factory needs: the recipe, the stream's shape, the device and the evaluator."""

    config: StrategyConfig
    input_shape: tuple[int, ...]
    num_classes: int
    device: torch.device
    evaluator: Any = None
    plugins: list[SupervisedPlugin] = field(default_factory=list)
    make_optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None
    eval_every: int = -1

    def mlp(self) -> MLP:
        """The back-propagation MLP with the recipe's hidden sizes."""
        return MLP(self.input_shape, self.config.hidden, self.num_classes)

    def bp_net(self) -> torch.nn.Module:
        """The back-propagation network of the recipe's ``net`` and ``hidden``: an :class:`MLP` or a
        :class:`~ffcl.nn.conv.ConvNet` (conv stages, average pooling, a linear classifier); with
        ``head = "multi"`` its classifier is Avalanche's multi-head one (ffcl.strategies.heads)."""
        c = self.config
        net = self.mlp() if c.net == "mlp" else ConvNet(c.net, self.image_shape(), self.blocks(), self.num_classes)
        return MultiHeadNet(net) if c.head == "multi" else net

    def ff_net(self, objective: Objective, *, mlp: dict[str, Any] | None = None, **common: Any) -> FFNet:
        """The FF network of the recipe's ``net``, built by that kind's function (:data:`FF_NETS`)
        from the ``common`` arguments and, on an MLP, the MLP-only ``mlp`` ones (label codes,
        k-WTA, residual input, ...): a learner registers those as ``mlp_only``, so a recipe that
        sets one on a conv net is refused before this runs."""
        if self.config.net == "mlp":
            return FF_NETS["mlp"](self, objective, **common, **(mlp or {}))
        return FF_NETS["conv"](self, objective, **common)

    def blocks(self) -> list[int]:
        """The recipe's hidden widths, for a learner made of local blocks (it needs at least one)."""
        if not self.config.hidden:
            raise ConfigError(f"learner '{self.config.learner}' is a stack of local blocks: 'hidden' needs at least one width, e.g. [1000]")
        return list(self.config.hidden)

    def image_shape(self) -> tuple[int, int, int]:
        """The input shape as [channels, height, width], for a conv net (one line saying so otherwise)."""
        if len(self.input_shape) != 3:
            raise ConfigError(f"net '{self.config.net}' is convolutional and needs images [channels, height, width], "
                              f"got input shape {tuple(self.input_shape)}; use net = \"mlp\"")
        return tuple(self.input_shape)  # type: ignore[return-value]

    def optimizer(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The recipe's optimiser over ``params`` (or the caller's, given to :func:`build_strategy`)."""
        if self.make_optimizer is not None:
            return self.make_optimizer(params)
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        opt = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        # fused: one kernel for the whole update, ~10x faster than the default on CPU (docs/learners.md)
        return opt(params, lr=c.lr, weight_decay=c.weight_decay, fused=True)

    def template_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every Avalanche template takes."""
        c = self.config
        return dict(
            train_mb_size=c.batch_size,
            train_epochs=c.epochs,
            eval_mb_size=c.eval_batch_size,
            device=self.device,
            plugins=self.plugins,
            evaluator=self.evaluator,
            eval_every=self.eval_every,
        )


def mlp_ff_net(ctx: BuildContext, objective: Objective, *, split: bool = False, score_layers: str = "all",
               standardize_input: bool = False, code: str = "random", code_dim: int = 100, code_p: float = 0.1,
               code_scale: float = 1.0, residual: bool = True, k: int | None = None, boost: float = 0.0, seed: int = 0) -> FFNet:
    """An :class:`FFNet` of the recipe's ``hidden`` widths; ``score_layers``: ``all``, ``skip_first`` or ``last``."""
    if score_layers not in ("all", "skip_first", "last"):
        raise ConfigError(f"score_layers must be all, skip_first or last, got '{score_layers}'")
    model = FFNet(ctx.input_shape, ctx.blocks(), ctx.num_classes, objective, code=code, code_dim=code_dim, code_p=code_p,
                  code_scale=code_scale, residual=residual, split=split, k=k, boost=boost,
                  skip_first_in_score=score_layers == "skip_first", standardize_input=standardize_input, seed=seed)
    if score_layers == "last":
        model.score_layers = model.score_layers[-1:]
    return model


def conv_ff_net(ctx: BuildContext, objective: Objective, *, split: bool = False, score_layers: str = "all",
                standardize_input: bool = False) -> ConvFFNet:
    """A :class:`ConvFFNet` of the recipe's conv ``net``, ``hidden`` stage widths and ``stages_per_block``;
    ``score_layers``: ``all``, ``skip_first`` (every block but the first, as Hinton's FF) or ``last``."""
    c = ctx.config
    if score_layers not in ("all", "skip_first", "last"):
        raise ConfigError(f"score_layers must be all, skip_first or last, got '{score_layers}'")
    try:
        model = ConvFFNet(c.net, ctx.image_shape(), ctx.blocks(), ctx.num_classes, objective, split=split,
                          score_layers="last" if score_layers == "last" else "all", standardize_input=standardize_input,
                          stages_per_block=c.stages_per_block)
    except ValueError as e:
        raise ConfigError(f"learner '{c.learner}' on net '{c.net}': {e}") from None
    if score_layers == "skip_first" and len(model.score_layers) > 1:
        model.score_layers = model.score_layers[1:]
    return model


FF_NETS: dict[str, Callable[..., FFNet]] = {"mlp": mlp_ff_net, "conv": conv_ff_net}
"""One function per net kind (the conv nets share one), each taking only the arguments it uses."""


EXTENSIONS_GROUP = "ffcl.extensions"
_loaded_extensions: set[str] = set()


def load_extensions() -> list[str]:
    """Import every module installed packages declare under the ``ffcl.extensions`` entry-point
    group, so that the learners, plugins and objectives they register can be named in recipes
    (also by ``ffcl run``); each module is imported once. Returns the entry points' names."""
    for ep in entry_points(group=EXTENSIONS_GROUP):
        if ep.name in _loaded_extensions:
            continue
        try:
            ep.load()
        except (Exception, SystemExit) as e:  # noqa: BLE001 - any failure of someone else's module (sys.exit too): say which
            raise ConfigError(f"the ffcl extension '{ep.name}' ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
        _loaded_extensions.add(ep.name)
    return sorted(_loaded_extensions)


def _call(kind: str, name: str, registry: dict[str, Callable[..., Any]], ctx: BuildContext, args: dict[str, Any]) -> Any:
    if name not in registry:
        raise ConfigError(f"unknown {kind} '{name}'; choose one of: {', '.join(sorted(registry))} "
                          f"(your own: register it, docs/extending.md)")
    fn = registry[name]
    if kind == "learner":
        check_learner_options(name, ctx.config, args)
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())[1:]
    known = {p.name: p for p in params}
    for key, value in args.items():
        if key not in known:
            raise ConfigError(
                f"{kind} '{name}' has no argument '{key}'; its arguments are: {', '.join(known) or 'none'}"
            )
        check_type(value, known[key].annotation, f"{kind} '{name}': argument '{key}'")
    missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in args]
    if missing:
        raise ConfigError(f"{kind} '{name}' needs argument(s): {', '.join(missing)}")
    bound = sig.bind(ctx, **args)
    bound.apply_defaults()  # an FF learner's template options arrive with its own defaults
    return fn(*bound.args, **bound.kwargs)


def _users(option: str, net: str | None = None) -> str:
    """The registered learners that take learner argument ``option`` (on ``net``, when given)."""
    names = [n for n, fn in sorted(LEARNERS.items()) if option in inspect.signature(fn).parameters
             and option not in LEARNER_OPTIONS.get(n, LearnerOptions()).not_used
             and not (net and net != "mlp" and option in LEARNER_OPTIONS.get(n, LearnerOptions()).mlp_only)]
    return ", ".join(names) or "no learner"


def argument_defaults(config: StrategyConfig) -> dict[str, Any]:
    """The defaults of the recipe's learner's and plugins' arguments (those that apply to its net),
    as ``{"learner_args": {...}, "plugins": {NAME: {...}}}``: what ``ffcl recipes --show`` lists."""
    _load_builtins()
    load_extensions()

    def defaults(fn: Callable[..., Any], skip: Iterable[str] = ()) -> dict[str, Any]:
        return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[1:]
                if p.default is not inspect.Parameter.empty and p.name not in skip}

    mlp_only = LEARNER_OPTIONS.get(config.learner, LearnerOptions()).mlp_only if config.net != "mlp" else ()
    learner = defaults(LEARNERS[config.learner], mlp_only) if config.learner in LEARNERS else {}
    return {"learner_args": learner, "plugins": {n: defaults(PLUGINS[n]) for n in config.plugins if n in PLUGINS}}


def check_learner_options(name: str, config: StrategyConfig, args: dict[str, Any]) -> None:
    """Refuse, in one line naming who would use it, a setting that learner ``name`` would ignore:
    an MLP-only argument on a conv net, an FF template option its objective never reads, or
    ``stages_per_block`` for a learner without local conv blocks."""
    opts = LEARNER_OPTIONS.get(name, LearnerOptions())
    for key in args:
        if config.net != "mlp" and key in opts.mlp_only:
            raise ConfigError(f"strategy.learner_args.{key} is not used by {name} on a {config.net} net; it applies to mlp nets "
                              f"(drop it, or set strategy.net = \"mlp\")")
        if key in opts.not_used:
            raise ConfigError(f"strategy.learner_args.{key} is not used by {name} ({opts.not_used[key]}); "
                              f"it applies to {_users(key, config.net)}")
    if config.stages_per_block != 1 and not opts.local_blocks:
        users = ", ".join(n for n in sorted(LEARNERS) if LEARNER_OPTIONS.get(n, LearnerOptions()).local_blocks)
        raise ConfigError(f"strategy.stages_per_block is not used by {name} (it trains its net as one block); "
                          f"it applies to the learners with local conv blocks: {users}")
    if config.net != "mlp" and name not in NET_LEARNERS:
        raise ConfigError(f"strategy.net = \"{config.net}\" is not used by {name} (it trains no network of that kind); "
                          f"it applies to {', '.join(sorted(NET_LEARNERS))}")


def build_strategy(
    config: StrategyConfig,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    device: torch.device | str = "cpu",
    evaluator: Any = None,
    extra_plugins: Iterable[SupervisedPlugin] = (),
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
    eval_every: int = -1,
    task_incremental: bool = False,
) -> SupervisedTemplate:
    """Build the Avalanche strategy a recipe describes: its plugins first, then its learner.

    ``optimizer`` (e.g. ``lambda params: torch.optim.SGD(params, lr=0.1)``) replaces the recipe's;
    ``eval_every`` is Avalanche's (evaluate every that many epochs on the streams given to
    ``train(..., eval_streams=...)``; plugins such as ``EarlyStoppingPlugin`` need it).
    ``task_incremental``: the stream gives task labels and the learner predicts among the sample's
    task's classes (a :class:`~ffcl.strategies.heads.TaskMask`, the first plugin, masks the others),
    with the recipe's ``head`` (ffcl.strategies.heads)."""
    _load_builtins()
    load_extensions()
    if config.head == "multi" and not task_incremental:
        raise ConfigError("head = \"multi\" has one head per task and needs task labels: build with task_incremental=True "
                          "(a task_incremental scenario), or drop it")
    ctx = BuildContext(config, tuple(input_shape), num_classes, torch.device(device), evaluator,
                       make_optimizer=optimizer, eval_every=eval_every)
    if task_incremental:
        ctx.plugins.append(TaskMask())
    ctx.plugins.extend(_call("plugin", name, PLUGINS, ctx, args) for name, args in config.plugins.items())
    ctx.plugins.extend(extra_plugins)
    strategy = _call("learner", config.learner, LEARNERS, ctx, config.learner_args)
    if config.head == "multi" and not isinstance(strategy.model, MultiTaskModule):
        raise ConfigError(f"head = \"multi\" is Avalanche's MultiHeadClassifier for back-propagation networks; learner "
                          f"'{config.learner}' ({type(strategy.model).__name__}) takes the masked head: drop head or set it to \"masked\"")
    for plugin in getattr(strategy, "plugins", ()):  # plugins that bind to the model (neuron allocation) check it now, not mid-run
        if callable(getattr(plugin, "attach", None)):
            plugin.attach(strategy.model)
    strategy.ffcl_recipe = {"config": config, "input_shape": tuple(input_shape), "num_classes": num_classes}  # for ffcl.learner_file
    return strategy
