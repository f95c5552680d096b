"""``learner.pt``: a learner in a form that is safe to share and to open.

A checkpoint (``checkpoint.pt``) pickles the whole Avalanche strategy, so loading one can run
any code its maker put in it; ffcl unpickles only its own (``ffcl.trust``). ``learner.pt`` holds
only tensors, strings and numbers, and is read with ``torch.load(weights_only=True)``, which
refuses everything else: opening one received from anybody executes no code. It holds

* ``strategy``: the resolved recipe (``StrategyConfig`` as a dict), ``input_shape`` and
  ``num_classes``: what :func:`~ffcl.strategies.build_strategy` rebuilds the learner from;
* ``state``: the model's ``state_dict`` (weights, label codes, seen and frozen classes, neuron
  owners, class statistics);
* ``strategy_state``: the few counters a strategy keeps outside its model (e.g. how many
  experiences have trained ``dc_lda``'s features; ``ffcl.protocols.LearnerFileState``), and
  ``class_names``.

A learner argument that names a TorchScript file (``slda``'s ``feature_extractor``) is a path,
not code, but loading it would run that module (``torch.jit.load``, then its ``forward``). The
readers here therefore refuse a file that names one unless the caller names the module themself
(``feature_extractor=PATH``, which replaces the recorded path); ``ffcl adapt --weights-only`` loads
the recorded one only from a run ffcl wrote on this machine or with ``--trust-checkpoint``.

What it does not hold: the optimiser's moments and plugin state such as a replay buffer or EWC's
importances. A learner read from it predicts exactly as the saved one; trained further, it starts
with a fresh optimiser and empty plugin state. Resuming one's own run uses the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

from .config import ConfigError, StrategyConfig, from_dict, to_dict
from .files import atomic_path
from .protocols import LearnerFileState, ResolvesRecipe

__all__ = ["LEARNER_FILE", "FORMAT", "save_learner", "read_learner", "learner_record", "load_record", "check_record", "strategy_from_record", "recipe_of",
           "UntrustedScript"]

LEARNER_FILE = "learner.pt"
FORMAT = "ffcl-learner/1"
SCRIPT_ARG = "feature_extractor"  # the learner argument that names a TorchScript file (slda)


class UntrustedScript(ConfigError):
    """A learner file names a TorchScript module (``path``) that the caller did not name."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def recipe_of(strategy: Any) -> dict[str, Any]:
    """What :func:`~ffcl.strategies.build_strategy` recorded on a strategy it built."""
    recipe = getattr(strategy, "ffcl_recipe", None)
    if recipe is None:
        raise ValueError("this strategy was not built by ffcl.strategies.build_strategy; it has no recipe to save")
    return recipe


def learner_record(strategy: Any, class_names: Sequence[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What :func:`save_learner` writes: tensors, strings and numbers only."""
    recipe = recipe_of(strategy)
    config = to_dict(recipe["config"])
    for plugin in strategy.plugins:  # e.g. capacity settled at attach time, so a rebuilt learner allocates alike
        if isinstance(plugin, ResolvesRecipe) and plugin.recipe_key in config["plugins"]:
            config["plugins"][plugin.recipe_key] = {**config["plugins"][plugin.recipe_key], **plugin.resolved_args()}
    return {
        "format": FORMAT,
        "strategy": config,
        "input_shape": list(recipe["input_shape"]),
        "num_classes": int(getattr(strategy.model, "max_classes", recipe["num_classes"])),
        "class_names": [str(c) for c in class_names] if class_names is not None else None,
        "state": {k: v.detach().cpu() for k, v in strategy.model.state_dict().items()},
        "strategy_state": {k: int(v) for k, v in strategy.learner_state().items()} if isinstance(strategy, LearnerFileState) else {},
        "extra": extra or {},
    }


def save_learner(strategy: Any, path: str | Path, class_names: Sequence[str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
    """Write ``strategy``'s learner to ``path`` (atomically) in the weights-only format; ``extra``
    (strings, numbers, lists and dicts of them) is stored alongside."""
    with atomic_path(Path(path)) as tmp:
        torch.save(learner_record(strategy, class_names, extra), tmp)


def load_record(source: str | Path | BinaryIO, feature_extractor: str | Path | None = None) -> dict[str, Any]:
    """The record in a learner file (a path or a binary file object), read weights-only.

    A TorchScript ``feature_extractor`` the file names is refused (:class:`UntrustedScript`)
    unless the caller names one (``feature_extractor``), which then replaces the recorded path."""
    where = getattr(source, "name", None) or (str(source) if isinstance(source, (str, Path)) else "the learner data")
    try:
        record = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, not a torch file, or holds objects weights_only refuses
        raise ConfigError(f"{where} is not an ffcl learner file ({type(e).__name__}); it is damaged or holds more than tensors") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"{where} is not an ffcl learner file (format {FORMAT!r} expected)")
    _name_script(record, feature_extractor, where)  # before check_record, which builds the learner
    check_record(record, where)
    return record


def _name_script(record: dict[str, Any], given: str | Path | None, where: str) -> None:
    """Put the caller's TorchScript path in place of the one ``record`` names, or refuse."""
    strategy = record.get("strategy")
    args = strategy.get("learner_args") if isinstance(strategy, dict) else None
    named = args.get(SCRIPT_ARG) if isinstance(args, dict) else None
    if given is None:
        if named:
            raise UntrustedScript(f"{where} names a TorchScript {SCRIPT_ARG} {named!r}, which loading would run (torch.jit.load); "
                                  f"it is loaded only if you name it yourself: {SCRIPT_ARG}=PATH (ffcl adapt: --trust-checkpoint)",
                                  str(named))
        return
    if not named or not isinstance(args, dict):
        raise ConfigError(f"{where} names no TorchScript {SCRIPT_ARG}, but one was given ({str(given)!r}); drop it")
    args[SCRIPT_ARG] = str(given)


_FIELDS = {"strategy": dict, "input_shape": list, "num_classes": int, "state": dict, "strategy_state": dict}


def check_record(record: dict[str, Any], where: str = "the learner file") -> None:
    """A one-line :class:`ConfigError` unless ``record`` is whole and its sizes are those of its
    tensors, checked before anything is allocated: every field present with its type, ``num_classes``
    no larger than the tensors hold, and every tensor of the model that its recipe builds (built on
    PyTorch's ``meta`` device, which allocates nothing) present in ``state`` with the same shape."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where}: {why}; the file is damaged or was edited")

    for key, kind in _FIELDS.items():
        if key not in record:
            raise bad(f"it lacks {key!r}")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise bad(f"{key!r} is a {type(record[key]).__name__}, not a {kind.__name__}")
    shape, n = record["input_shape"], record["num_classes"]
    if not 1 <= len(shape) <= 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise bad(f"input_shape {shape} is not 1 to 3 positive sizes")
    state = record["state"]
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise bad("'state' holds something other than named tensors")
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in record["strategy_state"].items()):
        raise bad("'strategy_state' holds something other than named integers")
    names = record.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(c, str) for c in names) or len(names) > n):
        raise bad(f"'class_names' is not a list of at most {n} strings")
    if not isinstance(record.get("extra", {}), dict):
        raise bad("'extra' is not a dict")
    held = max((max(t.shape, default=1) for t in state.values() if t.numel()), default=0)  # a class count is a size of some tensor
    allocation = record["strategy"].get("plugins", {}).get("allocation", {}) if isinstance(record["strategy"].get("plugins"), dict) else {}
    for what, value in (("num_classes", n), ("the allocation plugin's max_classes", allocation.get("max_classes", 1) if isinstance(allocation, dict) else 1)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= held:
            raise bad(f"{what} is {value!r}, but its tensors hold at most {held} classes")
    expected = _planned_state(record)
    if expected is None:  # a recipe that cannot be built on the meta device: the size checks above stand
        return
    for key, planned in expected.items():
        if key not in state:
            raise bad(f"it lacks the tensor {key!r} of the model its recipe builds")
        if tuple(state[key].shape) != tuple(planned.shape) and planned.numel():
            raise bad(f"tensor {key!r} has shape {list(state[key].shape)}, but the recipe builds {list(planned.shape)}")


def _planned_state(record: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The model state ``record``'s recipe builds, as meta tensors (no memory), or None if the
    recipe cannot be built on the meta device."""
    import warnings

    from .strategies import build_strategy

    config = from_dict(StrategyConfig, record["strategy"], "learner file: strategy")
    config.validate("learner file: strategy")
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            strategy = build_strategy(config, input_shape=tuple(record["input_shape"]), num_classes=record["num_classes"],
                                      device=torch.device("meta"))
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - a learner that reads values while it is built (Tensor.item on meta)
        return None
    return strategy.model.state_dict()


def strategy_from_record(record: dict[str, Any], device: str | torch.device = "cpu", **build_kwargs: Any) -> Any:
    """The strategy a learner record describes, rebuilt by ``build_strategy`` with its model state."""
    from .strategies import build_strategy

    config = from_dict(StrategyConfig, record["strategy"], "learner file: strategy")
    strategy = build_strategy(config, input_shape=tuple(record["input_shape"]), num_classes=record["num_classes"],
                              device=device, **build_kwargs)
    _fit_shapes(strategy.model, record["state"])
    strategy.model.load_state_dict(record["state"])
    strategy.model.to(device)
    if isinstance(strategy, LearnerFileState):  # counters its model does not hold (ffcl.protocols)
        strategy.load_learner_state(dict(record["strategy_state"]))
    for plugin in strategy.plugins:  # e.g. neuron allocation adopts the owners it finds
        if hasattr(plugin, "attach"):
            plugin.attach(strategy.model)
    strategy.ffcl_class_names = tuple(record["class_names"]) if record["class_names"] else None
    return strategy


def read_learner(path: str | Path | BinaryIO, device: str | torch.device = "cpu", feature_extractor: str | Path | None = None,
                 **build_kwargs: Any) -> Any:
    """The strategy saved in ``path`` by :func:`save_learner`, rebuilt by ``build_strategy`` (to
    which ``build_kwargs`` go: ``evaluator``, ``extra_plugins``, ...). Executes no code from the file;
    a TorchScript ``feature_extractor`` it names is loaded only from the path the caller gives."""
    return strategy_from_record(load_record(path, feature_extractor), device, **build_kwargs)


def _fit_shapes(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Make room for saved tensors the freshly built model holds in another shape or not at all
    (buffers set during training, such as neuron owners), so ``load_state_dict`` can fill them."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape == value.shape:
            continue
        owner_name, _, name = key.rpartition(".")
        module = model.get_submodule(owner_name) if owner_name else model
        if name in module._parameters:
            module._parameters[name] = torch.nn.Parameter(torch.empty_like(value))
        else:
            module.register_buffer(name, torch.empty_like(value))
