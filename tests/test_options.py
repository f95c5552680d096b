"""Every learner option reaches its code or is refused (issue 27): for each registered learner, on
an MLP and (where the learner takes a net) on each conv net, each of its arguments set to a value
other than its default either changes the built strategy (its network, objective, template or
their settings) or stops the build with one line naming the option and who would use it."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from ffcl.config import NETS, ConfigError, StrategyConfig
from ffcl.strategies import LEARNERS, build_strategy
from ffcl.strategies.ff_template import TEMPLATE_OPTIONS, FFTemplate, template_signature
from ffcl.strategies.registry import LEARNER_OPTIONS, NET_LEARNERS, _load_builtins

_load_builtins()

CHOICES = {  # string options: the values to try, the first one other than the default is used
    "negatives": ["random", "hardest"], "update": ["fused", "blockwise"], "score_layers": ["all", "last"],
    "predict": ["energy", "usual"], "readout": ["lda", "ncm"], "objective": ["distance", "symba"],
    "shrinkage": [1e-4, 2e-4], "proj_dim": [4, 32], "hard_candidates": [0, 5], "cascade": [(), [5]],  # proj_dim: capped by the width (8 and 16 here)
}
NEEDS = {"hard_candidates": {"negatives": "hardest", "training_scores": False}}  # what an option needs to be valid
OVERRIDES = {("randumb", "gamma"): 0.5}  # (learner, argument): the test value where the generic rule does not fit
SHAPES = {"dgr": (1, 28, 28)}  # the learner's input (default: 8x8 digits)


def _other(learner: str, name: str, default: Any, tmp_path) -> Any:
    """A valid value for argument ``name`` of ``learner`` other than ``default``."""
    if (learner, name) in OVERRIDES:
        return OVERRIDES[learner, name]
    if name in CHOICES:
        return next(v for v in CHOICES[name] if v != default)
    if name == "feature_extractor":  # slda: a TorchScript file
        path = tmp_path / "features.pt"
        torch.jit.save(torch.jit.script(torch.nn.Flatten()), str(path))
        return str(path)
    if name == "objective_args":
        return {"gamma": 2.0, "margin": 1.0}
    if isinstance(default, bool):
        return not default
    if default is None:
        return 16
    if isinstance(default, int):
        return default + 1
    if isinstance(default, float):
        return default * 2 if default else 0.5
    raise AssertionError(f"no test value for {name} = {default!r}: add one to CHOICES")


def _fingerprint(strategy: Any) -> dict[str, Any]:
    """What a build made: the classes, settings and tensor checksums of the strategy, its model and
    every ffcl or Avalanche object they hold (the evaluator aside)."""
    out: dict[str, Any] = {}
    seen: set[int] = set()

    def simple(v: Any) -> bool:
        return isinstance(v, (bool, int, float, str, type(None))) or (isinstance(v, (list, tuple)) and all(map(simple, v)))

    def walk(prefix: str, obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 6:
            return
        seen.add(id(obj))
        out[f"{prefix}:type"] = type(obj).__name__
        if isinstance(obj, torch.nn.Module):
            for k, t in obj.state_dict().items():
                out[f"{prefix}.{k}"] = (tuple(t.shape), float(t.double().sum()) if t.numel() else 0.0)
        for k, v in getattr(obj, "__dict__", {}).items():
            if k in ("evaluator", "_criterion") or k.startswith("_parameters") or k.startswith("_buffers"):
                continue
            if simple(v):
                out[f"{prefix}.{k}"] = v
            items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, (list, tuple)) else [(None, v)]
            for i, x in items:
                if isinstance(x, torch.nn.Module) or type(x).__module__.split(".")[0] in ("ffcl", "avalanche"):
                    walk(f"{prefix}.{k}" + ("" if i is None else f"[{i}]"), x, depth + 1)

    walk("strategy", strategy, 0)
    return out


def _build(learner: str, net: str, args: dict[str, Any]) -> dict[str, Any]:
    cfg = StrategyConfig(learner=learner, net=net, hidden=[40, 40] if net == "mlp" else [8, 16], learner_args=dict(args))
    torch.manual_seed(0)
    return _fingerprint(build_strategy(cfg, input_shape=SHAPES.get(learner, (1, 8, 8)), num_classes=10))


def _cases() -> list[tuple[str, str]]:
    return [(name, net) for name in sorted(LEARNERS) for net in (NETS if name in NET_LEARNERS else ("mlp",))]


@pytest.mark.parametrize("learner,net", _cases())
def test_every_option_is_used_or_refused(learner, net, tmp_path):
    try:
        _build(learner, net, {})
    except ConfigError as e:  # the learner itself refuses this net kind (sff on an MLP, ...): nothing to walk
        assert "net" in str(e), e
        return
    params = list(inspect.signature(LEARNERS[learner]).parameters.values())[1:]
    for p in params:
        value = _other(learner, p.name, p.default, tmp_path)
        base = {k: v for k, v in NEEDS.get(p.name, {}).items() if k in {q.name for q in params}}
        try:
            changed = _build(learner, net, {**base, p.name: value})
        except ConfigError as e:
            message = str(e)
            assert f"strategy.learner_args.{p.name} is not used by {learner}" in message and "applies to" in message, message
            assert "\n" not in message
            continue
        assert changed != _build(learner, net, base), f"{learner} on {net}: {p.name} = {value!r} changed nothing"


def test_refused_options_name_who_uses_them():
    cfg = StrategyConfig(learner="sffa", net="vgg", hidden=[8, 16], learner_args={"k": 5})
    with pytest.raises(ConfigError, match=r"^strategy.learner_args.k is not used by sffa on a vgg net; it applies to mlp nets"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    cfg = StrategyConfig(learner="sffa", hidden=[40], learner_args={"collaboration": True})
    with pytest.raises(ConfigError, match=r"collaboration is not used by sffa .*; it applies to df, ff, trifecta$"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    cfg = StrategyConfig(learner="mlp", net="vgg", hidden=[8, 16], stages_per_block=2)
    with pytest.raises(ConfigError, match="stages_per_block is not used by mlp"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)
    cfg = StrategyConfig(learner="ncm", net="vgg", hidden=[8, 16])
    with pytest.raises(ConfigError, match="strategy.net = \"vgg\" is not used by ncm"):
        build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10)


def test_template_options_table_is_the_templates_signature():
    sig = inspect.signature(FFTemplate.__init__).parameters
    options = [n for n, p in sig.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in ("model", "optimizer")]
    assert list(TEMPLATE_OPTIONS) == options
    assert set(template_signature()) == set(options)
    for name in ("sffa", "df", "ff", "trifecta"):  # every FF learner takes every option it does not refuse
        taken = set(inspect.signature(LEARNERS[name]).parameters)
        assert taken >= set(TEMPLATE_OPTIONS) - set(LEARNER_OPTIONS[name].not_used), name
        assert not taken & set(LEARNER_OPTIONS[name].not_used), name


@pytest.mark.parametrize("option", ["k", "boost", "code_dim", "seed"])
def test_cli_refuses_mlp_options_on_a_conv_net(option, capsys, tmp_path, monkeypatch):
    from ffcl.cli import main

    monkeypatch.chdir(tmp_path)  # a run that went ahead would write its directory here

    value = {"k": "5", "boost": "1.0", "code_dim": "50", "seed": "3"}[option]
    for dry in (["--dry-run"], []):
        rc = main(["run", "--strategy", "sffa", "--set", 'strategy.net="vgg"', "--set", f"strategy.learner_args.{option}={value}", *dry])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.count("\n") == 0, err
        assert not [f for f in tmp_path.rglob("*") if f.is_file()]  # no run directory was written
        assert err == (f"ffcl: error: strategy.learner_args.{option} is not used by sffa on a vgg net; it applies to mlp nets "
                       "(drop it, or set strategy.net = \"mlp\")")
