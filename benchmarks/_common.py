"""What every benchmark script shares: its JSON file (command, results, machine) and its ``--dry-run``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ffcl.config import ConfigError, load_scenario, load_strategy
from ffcl.data import DataError, load_dataset
from ffcl.machine import machine_info
from ffcl.rundir import write_json

__all__ = ["write_benchmark", "check_benchmark", "throughputs", "test_accuracy"]


def write_benchmark(path: Path, **fields: Any) -> None:
    """A benchmark's JSON: the command line that produced it, its ``fields`` and ``machine_info``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"command": " ".join(sys.argv), **fields, "machine": machine_info()})
    print(f"wrote {path}")


def check_benchmark(*, strategies: Iterable[str] = (), scenarios: Iterable[str] = (), datasets: Iterable[str] = (),
                    names: dict[str, tuple[Iterable[str], Iterable[str]]] | None = None) -> str:
    """A benchmark's ``--dry-run``: the strategy and scenario recipes it names load, its data sets
    are available here, and every other name (``names``: what -> (given, allowed)) is known. Raises
    :class:`~ffcl.config.ConfigError` with what to change; returns what was checked. The data sets
    of the scenarios are checked too."""
    strategies, scenarios, datasets = list(strategies), list(scenarios), list(datasets)
    for name in strategies:
        load_strategy(name)
    for name in scenarios:
        dataset = load_scenario(name).dataset
        datasets += [] if dataset in datasets or dataset.startswith(("npz:", "folder:")) else [dataset]
    for name in datasets:
        try:
            load_dataset(name)
        except DataError as e:
            raise ConfigError(str(e)) from None
    for what, (given, allowed) in (names or {}).items():
        allowed = list(allowed)
        for name in given:
            if name not in allowed:
                raise ConfigError(f"unknown {what} '{name}'; choose from: {', '.join(allowed)}")
    checked = [f"{len(v)} {k}" for k, v in (("strategy recipe(s)", strategies), ("scenario(s)", scenarios), ("data set(s)", datasets)) if v]
    checked += [f"{len(list(given))} {what}(s)" for what, (given, _) in (names or {}).items()]
    return f"dry run, nothing run or written: checked {', '.join(checked) or 'the arguments'}"


def throughputs(fns: dict[str, Any], x: torch.Tensor, repeats: int = 5, chunk: int = 100) -> dict[str, float]:
    """Images per second of each ``fn`` over ``x`` in chunks of ``chunk``: the functions take turns
    (round-robin, best of ``repeats`` each), so a slow spell of the machine hits them all alike."""
    best = dict.fromkeys(fns, float("inf"))
    with torch.no_grad():
        for fn in fns.values():
            fn(x[:chunk])  # warm-up
        for _ in range(repeats):
            for name, fn in fns.items():
                t = time.perf_counter()
                for i in range(0, len(x), chunk):
                    fn(x[i : i + chunk])
                best[name] = min(best[name], time.perf_counter() - t)
    return {name: len(x) / t for name, t in best.items()}


def test_accuracy(model: Any, data: Any, chunk: int = 100) -> float:
    """Accuracy of ``model`` (class scores per image) over the test images of ``data`` (a
    ``TensorData``), in chunks of ``chunk`` images."""
    with torch.no_grad():
        pred = torch.cat([model(x).argmax(1) for x in data.x_test.split(chunk)])
    return (pred == data.y_test).float().mean().item()
