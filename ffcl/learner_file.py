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
  experiences have trained ``dc_lda``'s features), and ``class_names``.

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

__all__ = ["LEARNER_FILE", "FORMAT", "save_learner", "read_learner", "learner_record", "load_record", "strategy_from_record", "recipe_of"]

LEARNER_FILE = "learner.pt"
FORMAT = "ffcl-learner/1"
STRATEGY_STATE = ("features_trained",)  # strategy attributes (ints) that the model's state_dict does not hold


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
    for plugin in strategy.plugins:  # capacity resolved at attach time, so a rebuilt learner allocates alike
        if type(plugin).__name__ == "NeuronAllocation" and "allocation" in config["plugins"]:
            config["plugins"]["allocation"] = {**config["plugins"]["allocation"], "max_classes": plugin.max_classes}
    return {
        "format": FORMAT,
        "strategy": config,
        "input_shape": list(recipe["input_shape"]),
        "num_classes": int(getattr(strategy.model, "max_classes", recipe["num_classes"])),
        "class_names": [str(c) for c in class_names] if class_names is not None else None,
        "state": {k: v.detach().cpu() for k, v in strategy.model.state_dict().items()},
        "strategy_state": {k: int(getattr(strategy, k)) for k in STRATEGY_STATE if hasattr(strategy, k)},
        "extra": extra or {},
    }


def save_learner(strategy: Any, path: str | Path, class_names: Sequence[str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
    """Write ``strategy``'s learner to ``path`` (atomically) in the weights-only format; ``extra``
    (strings, numbers, lists and dicts of them) is stored alongside."""
    with atomic_path(Path(path)) as tmp:
        torch.save(learner_record(strategy, class_names, extra), tmp)


def load_record(source: str | Path | BinaryIO) -> dict[str, Any]:
    """The record in a learner file (a path or a binary file object), read weights-only."""
    where = getattr(source, "name", None) or (str(source) if isinstance(source, (str, Path)) else "the learner data")
    try:
        record = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated, not a torch file, or holds objects weights_only refuses
        raise ConfigError(f"{where} is not an ffcl learner file ({type(e).__name__}); it is damaged or holds more than tensors") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"{where} is not an ffcl learner file (format {FORMAT!r} expected)")
    return record


def strategy_from_record(record: dict[str, Any], device: str | torch.device = "cpu", **build_kwargs: Any) -> Any:
    """The strategy a learner record describes, rebuilt by ``build_strategy`` with its model state."""
    from .strategies import build_strategy

    config = from_dict(StrategyConfig, record["strategy"], "learner file: strategy")
    strategy = build_strategy(config, input_shape=tuple(record["input_shape"]), num_classes=record["num_classes"],
                              device=device, **build_kwargs)
    _fit_shapes(strategy.model, record["state"])
    strategy.model.load_state_dict(record["state"])
    strategy.model.to(device)
    for key, value in record["strategy_state"].items():
        if key in STRATEGY_STATE:
            setattr(strategy, key, int(value))
    for plugin in strategy.plugins:  # e.g. neuron allocation adopts the owners it finds
        if hasattr(plugin, "attach"):
            plugin.attach(strategy.model)
    strategy.ffcl_class_names = tuple(record["class_names"]) if record["class_names"] else None
    return strategy


def read_learner(path: str | Path | BinaryIO, device: str | torch.device = "cpu", **build_kwargs: Any) -> Any:
    """The strategy saved in ``path`` by :func:`save_learner`, rebuilt by ``build_strategy`` (to
    which ``build_kwargs`` go: ``evaluator``, ``extra_plugins``, ...). Executes no code from the file."""
    return strategy_from_record(load_record(path), device, **build_kwargs)


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
