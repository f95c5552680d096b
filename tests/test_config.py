"""Tests for ffcl.config: recipes load and validate, overrides, dict round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from avalanche.training.plugins import EvaluationPlugin

from ffcl import config
from ffcl.config import (
    ConfigError,
    RunConfig,
    ScenarioConfig,
    StrategyConfig,
    apply_overrides,
    from_dict,
    list_recipes,
    load_scenario,
    load_strategy,
    to_dict,
)
from ffcl.strategies import build_strategy


def write(tmp_path: Path, text: str, name: str = "recipe.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_line_error(excinfo: pytest.ExceptionInfo[ConfigError], *needles: str) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, f"not a one-line message: {msg!r}"
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


@pytest.fixture
def base() -> RunConfig:
    return RunConfig(
        scenario=load_scenario("split_digits"),
        strategy=load_strategy("naive"),
        scenario_name="split_digits",
        strategy_name="naive",
    )


# --------------------------------------------------------------------------- shipped recipes


def test_shipped_recipes_are_listed():
    scenarios, strategies = list_recipes("scenarios"), list_recipes("strategies")
    assert {"split_digits", "joint_digits", "online_split_digits", "split_mnist"} <= set(scenarios)
    assert {"naive", "replay", "ewc", "joint"} <= set(strategies)
    assert scenarios == sorted(scenarios) and strategies == sorted(strategies)


@pytest.mark.parametrize("name", list_recipes("scenarios"))
def test_every_scenario_recipe_loads(name):
    cfg = load_scenario(name)
    assert isinstance(cfg, ScenarioConfig)
    assert cfg.kind in config.SCENARIO_KINDS and cfg.n_experiences >= 1 and cfg.description
    if cfg.kind == "joint":
        assert cfg.n_experiences == 1
    # the same recipe by path gives the same config
    path = next(d / f"{name}.toml" for d in config.recipe_dirs("scenarios") if (d / f"{name}.toml").is_file())
    assert load_scenario(str(path)) == cfg


@pytest.mark.parametrize("name", list_recipes("strategies"))
def test_every_strategy_recipe_loads(name):
    cfg = load_strategy(name)
    assert isinstance(cfg, StrategyConfig)
    assert cfg.learner and cfg.optimizer in config.OPTIMIZERS and cfg.lr > 0 and cfg.description
    # and builds: its learner and plugin arguments are ones they take
    shape = (1, 28, 28) if cfg.learner == "dgr" else (1, 8, 8)  # Avalanche's DGR generator takes 28x28 images only
    strategy = build_strategy(cfg, input_shape=shape, num_classes=10, evaluator=EvaluationPlugin(loggers=[]))
    assert strategy.train_epochs == cfg.epochs
    assert all(isinstance(args, dict) for args in cfg.plugins.values())


def test_recipe_values_are_read(tmp_path):
    cfg = load_strategy(write(tmp_path, 'learner = "mlp"\nhidden = [7, 5]\nepochs = 4\nlr = 1\n[plugins.replay]\nmem_size = 9\n'))
    assert cfg.hidden == [7, 5] and cfg.epochs == 4 and cfg.plugins == {"replay": {"mem_size": 9}}
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)  # an integer is accepted for a float
    assert cfg.batch_size == StrategyConfig().batch_size  # unset keys keep their defaults


# --------------------------------------------------------------------------- invalid recipes


@pytest.mark.parametrize(
    "text, needles",
    [
        ('learner = "mlp"\nfoo = 1\n', ["unknown key 'foo'", "hidden"]),
        ('epochs = "3"\n', ["'epochs'", "integer", "'3'"]),
        ("epochs = true\n", ["'epochs'", "integer"]),
        ('lr = "x"\n', ["'lr'", "number", "'x'"]),
        ('hidden = ["a"]\n', ["'hidden'", "list[int]"]),
        ('hidden = 400\n', ["'hidden'", "list[int]"]),
        ('optimizer = "rmsprop"\n', ["'optimizer'", "sgd", "adam", "'rmsprop'"]),
        ("epochs = 0\n", ["'epochs'", ">= 1", "0"]),
        ("batch_size = -4\n", ["'batch_size'", ">= 1"]),
        ("eval_batch_size = 0\n", ["'eval_batch_size'"]),
        ("hidden = [10, 0]\n", ["'hidden'", "positive"]),
        ("lr = 0\n", ["'lr'", "> 0"]),
        ("lr = -0.1\n", ["'lr'", "> 0"]),
        ("plugins = {replay = 3}\n", ["plugin 'replay'", "table"]),
        ("learner_args = 3\n", ["'learner_args'"]),
    ],
)
def test_invalid_strategy_recipe(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_strategy(path)
    one_line_error(excinfo, path, *needles)


@pytest.mark.parametrize(
    "text, needles",
    [
        ('kind = "task-incremental"\n', ["'kind'", "class_incremental", "task_incremental", "domain_incremental", "joint", "'task-incremental'"]),
        ("n_experiences = 0\n", ["'n_experiences'", ">= 1"]),
        ("online_batch_size = -1\n", ["'online_batch_size'", ">= 1"]),
        ("online_experience_size = 0\n", ["'online_experience_size'", ">= 1"]),
        ("anytime_every = 0\n", ["'anytime_every'", ">= 1"]),
        ('kind = "drift"\ndrift = "blur"\n', ["'drift'", "rotate", "noise"]),
        ("drift_strength = -5.0\n", ["'drift_strength'", ">= 0"]),
        ("epochs = 0\n", ["'epochs'"]),
        ("batch_size = 0\n", ["'batch_size'"]),
        ("class_order = [1.5]\n", ["'class_order'"]),
        ('n_experiences = "5"\n', ["'n_experiences'", "integer"]),
        ("shuffle_classes = 1\n", ["'shuffle_classes'", "true or false"]),
        ("class_order = [1, 0]\nshuffle_classes = true\n", ["class_order", "shuffle_classes"]),
        ("[extra]\nx = 1\n", ["unknown key 'extra'"]),
    ],
)
def test_invalid_scenario_recipe(tmp_path, text, needles):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_scenario(path)
    one_line_error(excinfo, path, *needles)


def test_joint_scenario_forces_one_experience(tmp_path):
    cfg = load_scenario(write(tmp_path, 'kind = "joint"\nn_experiences = 5\n'))
    assert cfg.kind == "joint" and cfg.n_experiences == 1


def test_unknown_recipe_names():
    with pytest.raises(ConfigError) as excinfo:
        load_scenario("no_such_scenario")
    one_line_error(excinfo, "'no_such_scenario'", "split_digits", ".toml")
    with pytest.raises(ConfigError) as excinfo:
        load_strategy("no_such_strategy")
    one_line_error(excinfo, "'no_such_strategy'", "naive", "replay")


def test_unknown_strategy_message_says_strategy():
    with pytest.raises(ConfigError) as excinfo:
        load_strategy("no_such_strategy")
    one_line_error(excinfo, "unknown strategy 'no_such_strategy'")


def test_missing_recipe_file(tmp_path):
    missing = str(tmp_path / "missing.toml")
    for load in (load_scenario, load_strategy):
        with pytest.raises(ConfigError) as excinfo:
            load(missing)
        one_line_error(excinfo, missing, "does not exist")


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "epochs = \n[plugins\n")
    with pytest.raises(ConfigError) as excinfo:
        load_strategy(path)
    one_line_error(excinfo, path, "not valid TOML")


def test_run_config_rejects_bad_device(base):
    base.device = "tpu"
    with pytest.raises(ConfigError) as excinfo:
        base.validate()
    one_line_error(excinfo, "'device'", "'tpu'")


# --------------------------------------------------------------------------- overrides


def test_overrides_numbers_and_lists(base):
    new = apply_overrides(
        base,
        ["strategy.epochs=3", "strategy.lr=1e-2", "strategy.hidden=[16, 8]", "scenario.n_experiences = 2",
         "strategy.optimizer=sgd", "strategy.description=two words"],
    )
    assert new.strategy.epochs == 3 and new.strategy.lr == pytest.approx(0.01)
    assert new.strategy.hidden == [16, 8] and new.scenario.n_experiences == 2
    assert new.strategy.optimizer == "sgd" and new.strategy.description == "two words"
    # the names, seed and device are kept; the original is not modified
    assert (new.scenario_name, new.strategy_name, new.seed, new.device) == ("split_digits", "naive", 0, "auto")
    assert base.strategy.epochs == load_strategy("naive").epochs and base.strategy.hidden == [400, 400]
    assert base.scenario.n_experiences == 5


def test_override_nested_plugin_args(base):
    new = apply_overrides(base, ["strategy.plugins.replay.mem_size=200", "strategy.plugins.replay.policy=reservoir"])
    assert new.strategy.plugins == {"replay": {"mem_size": 200, "policy": "reservoir"}}
    assert base.strategy.plugins == {}
    again = apply_overrides(new, ["strategy.plugins.replay.mem_size=50"])
    assert again.strategy.plugins == {"replay": {"mem_size": 50, "policy": "reservoir"}}


def test_override_learner_args_and_class_order(base):
    new = apply_overrides(base, ["strategy.learner_args.mem_size=10", "scenario.class_order=[9,8,7,6,5,4,3,2,1,0]"])
    assert new.strategy.learner_args == {"mem_size": 10}
    assert new.scenario.class_order == list(range(9, -1, -1))


def test_overrides_are_validated(base):
    new = apply_overrides(base, ["scenario.kind=joint"])
    assert new.scenario.n_experiences == 1
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(base, ["scenario.n_experiences=0"])
    one_line_error(excinfo, "'n_experiences'")


@pytest.mark.parametrize(
    "item, needles",
    [
        ("model.epochs=3", ["model.epochs=3", "scenario", "strategy"]),
        ("epochs=3", ["epochs=3", "section"]),
        ("strategy.epochs", ["strategy.epochs", "key=value"]),
        ("strategy.epochs=x", ["'epochs'", "integer", "'x'"]),
        ("strategy.lr=fast", ["'lr'", "number"]),
        ("strategy.hidden=[\"a\"]", ["'hidden'", "list[int]"]),
        ("strategy.foo=1", ["unknown key 'foo'"]),
        ("strategy.lr.x=1", ["'lr' is not a table"]),
        ("strategy.plugins.replay=3", ["plugin 'replay'", "table"]),
        ("strategy.optimizer=rmsprop", ["'optimizer'", "'rmsprop'"]),
    ],
)
def test_bad_overrides(base, item, needles):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(base, [item])
    one_line_error(excinfo, *needles)


# --------------------------------------------------------------------------- dict round trips


def test_to_dict_from_dict_round_trip(base):
    cfg = apply_overrides(
        base, ["strategy.plugins.ewc.ewc_lambda=5.0", "scenario.class_order=[1,0,2,3,4,5,6,7,8,9]", "strategy.hidden=[3]"]
    )
    cfg.seed, cfg.device = 7, "cpu"
    data = to_dict(cfg)
    assert data["strategy"]["plugins"] == {"ewc": {"ewc_lambda": 5.0}} and data["seed"] == 7
    assert from_dict(RunConfig, data, "x") == cfg
    assert from_dict(RunConfig, json.loads(json.dumps(data)), "x") == cfg  # JSON-friendly
    assert from_dict(StrategyConfig, to_dict(cfg.strategy), "x") == cfg.strategy
    assert from_dict(ScenarioConfig, to_dict(cfg.scenario), "x") == cfg.scenario


def test_from_dict_errors():
    with pytest.raises(ConfigError) as excinfo:
        from_dict(RunConfig, {"scenario": {"bogus": 1}, "strategy": {}}, "where")
    one_line_error(excinfo, "where.scenario", "unknown key 'bogus'")
    with pytest.raises(ConfigError) as excinfo:
        from_dict(StrategyConfig, [1, 2], "where")
    one_line_error(excinfo, "where", "expected a table")
    with pytest.raises(ConfigError) as excinfo:
        from_dict(RunConfig, {"scenario": {}, "strategy": {}, "seed": "0"}, "where")
    one_line_error(excinfo, "'seed'", "integer")


@pytest.mark.parametrize("text", ['optimizer = "sgd"\nmomentum = -0.5\n', "weight_decay = -1.0\n", "lr = nan\n"])
def test_invalid_optimizer_values(tmp_path, text):
    with pytest.raises(ConfigError):
        load_strategy(write(tmp_path, text))


# --------------------------------------------------------------------------- extends, --show, options a kind does not use


def test_extends_overrides_key_by_key(tmp_path):
    write(tmp_path, 'learner = "sffa"\nhidden = [40]\nepochs = 3\n[learner_args]\nnegatives = "hardest"\nn_negatives = 2\n'
                    "[plugins.replay]\nmem_size = 50\npolicy = \"reservoir\"\n", "base.toml")
    child = load_strategy(write(tmp_path, 'extends = "base.toml"\nepochs = 4\n[learner_args]\nn_negatives = 3\n'
                                          "[plugins.replay]\nmem_size = 70\n[plugins.shift]\nmax_shift = 1\n"))
    assert child.learner == "sffa" and child.hidden == [40] and child.epochs == 4
    assert child.learner_args == {"negatives": "hardest", "n_negatives": 3}  # the base's other keys kept
    assert child.plugins == {"replay": {"mem_size": 70, "policy": "reservoir"}, "shift": {"max_shift": 1}}
    grandchild = load_strategy(write(tmp_path, 'extends = "recipe.toml"\n[learner_args]\nnegatives = "random"\n', "gc.toml"))
    assert grandchild.learner_args == {"negatives": "random", "n_negatives": 3} and grandchild.epochs == 4


def test_extends_a_shipped_recipe_by_name(tmp_path):
    cfg = load_strategy(write(tmp_path, 'extends = "replay_free"\n[learner_args]\ncovariance_refresh = 4096\n'))
    base = load_strategy("replay_free")
    assert cfg.learner_args == {**base.learner_args, "covariance_refresh": 4096}
    assert to_dict(cfg) | {"learner_args": {}} == to_dict(base) | {"learner_args": {}}
    assert load_strategy("replay_free_online").learner_args == cfg.learner_args
    sc = load_scenario(write(tmp_path, 'extends = "split_digits"\nn_experiences = 2\n', "sc.toml"))
    assert sc.n_experiences == 2 and sc.dataset == "digits" and sc.epochs == load_scenario("split_digits").epochs


def test_extends_errors_are_one_line(tmp_path):
    write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(ConfigError) as e:
        load_strategy(str(tmp_path / "a.toml"))
    one_line_error(e, "cycle", "a -> b -> a")
    with pytest.raises(ConfigError) as e:
        load_strategy(write(tmp_path, 'extends = "no_such_recipe"\n'))
    one_line_error(e, 'extends = "no_such_recipe"', "unknown strategy 'no_such_recipe'")
    with pytest.raises(ConfigError) as e:
        load_strategy(write(tmp_path, "extends = 3\n"))
    one_line_error(e, "'extends' must name a recipe")
    with pytest.raises(ConfigError) as e:  # the extended recipe is validated like any other
        load_strategy(write(tmp_path, 'extends = "naive"\nepochs = 0\n'))
    one_line_error(e, "'epochs'", ">= 1")


@pytest.mark.parametrize("name", list_recipes("strategies") + list_recipes("scenarios"))
def test_show_prints_the_resolved_recipe_as_toml(name, tmp_path, capsys):
    from ffcl.cli import main

    assert main(["recipes", "--show", name]) == 0
    text = capsys.readouterr().out
    path = write(tmp_path, text)
    if name in list_recipes("strategies"):
        assert load_strategy(path) == load_strategy(name)
    else:
        assert load_scenario(path) == load_scenario(name)


def test_show_fills_in_learner_and_plugin_defaults(capsys):
    from ffcl.cli import main

    assert main(["recipes", "--show", "replay"]) == 0
    text = capsys.readouterr().out
    assert "[plugins.replay]\n# mem_size = 500  (default)\n# policy = \"class_balanced\"  (default)" in text
    assert main(["recipes", "--show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("ffcl: error: unknown recipe 'nope'")


@pytest.mark.parametrize("text, needles", [
    ('kind = "class_incremental"\ndrift_strength = 30.0\n', ["scenario.drift_strength is not used", 'kind = "drift"']),
    ("online_batch_size = 5\n", ["scenario.online_batch_size is not used", "online = true"]),
    ("prequential_window = 50\n", ["scenario.prequential_window is not used", "online = true"]),
    ("anytime_test_size = 50\n", ["scenario.anytime_test_size is not used", "anytime_every"]),
    ('kind = "joint"\nevaluate = "seen"\n', ["scenario.evaluate is not used", "streams of several experiences"]),
    ('evaluate = "future"\n', ["'evaluate' must be one of all, seen"]),
])
def test_scenario_options_its_kind_does_not_use_are_refused(tmp_path, text, needles):
    with pytest.raises(ConfigError) as e:
        load_scenario(write(tmp_path, text))
    one_line_error(e, *needles)


def test_momentum_needs_sgd(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_strategy(write(tmp_path, 'optimizer = "adam"\nmomentum = 0.9\n'))
    one_line_error(e, "strategy.momentum is not used by the adam optimizer", "sgd")
    assert load_strategy(write(tmp_path, 'optimizer = "sgd"\nmomentum = 0.9\n')).momentum == 0.9
