"""One run from recipe to run directory: data -> stream -> strategy -> metrics -> files.

The run directory (ffcl.rundir) holds:

* ``config.json``: the resolved recipe (scenario, strategy, seed, device);
* ``metrics.json``: the accuracy matrix ``a[i][j]`` (accuracy on experience j after training
  experience i), final average accuracy, average forgetting, BWT, times and peak memory;
* ``metrics.csv``: one row per (training step, test experience);
* ``log.txt``: every metric Avalanche's evaluator logged (its TextLogger; ffcl.evaluation);
* ``tensorboard/``, ``wandb/``, ``csv/``: the same metrics through the loggers the recipe's
  ``loggers`` (or ``--logger``) names (ffcl.loggers);
* ``checkpoint.pt``: the learner after the last finished experience (Avalanche's checkpoint of the
  whole strategy: model, optimiser, plugin state such as replay buffers), so an interrupted run
  resumes with ``resume=True`` and a finished one can be evaluated or continued later. It is a
  pickle: ffcl loads only those it wrote itself (ffcl.checkpoint, ffcl.trust);
* ``learner.pt``: the same learner in the weights-only format that is safe to share and to open
  (``ffcl.learner_file``): the file to send to others.

The loop itself is ffcl.loop, shared with ``ffcl adapt``. This module also re-exports the names
scripts import from it (``load_learner``, ``write_checkpoint``, ``RunError``, ...).
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, Callable

import torch
from avalanche.checkpointing import maybe_load_checkpoint
from avalanche.logging import TextLogger
from avalanche.training import JointTraining
from avalanche.training.determinism.rng_manager import RNGManager

from .checkpoint import CHECKPOINT, load_learner, reading_checkpoint, write_checkpoint
from .config import ConfigError, RunConfig, ScenarioConfig, StrategyConfig, to_dict
from .data import Stream, load_dataset, make_stream
from .data.streams import KINDS, make_drift_stream, permuted
from .evaluation import model_summary, restore_test_data, run_evaluator, run_summaries, sample_test_data
from .learner_file import LEARNER_FILE
from .loggers import close_loggers, make_loggers
from .loop import FiniteGuard, Step, evaluate_row, resolve_device, torch_settings, train_loop
from .machine import machine_info, usable_cpus
from .metrics import peak_memory_mb, resident_memory_mb, summarize
from .progress import ProgressPlugin
from .rundir import RunError, check_data_route, check_out_dir, load_run_config, prepare_dir, remove_own, write_csv, write_json
from .strategies import build_strategy
from .strategies.registry import takes_net

__all__ = ["RunError", "run_experiment", "dry_run", "resolve_device", "load_run_config", "load_learner", "write_checkpoint",
           "build_stream", "strategy_config", "sample_test_data", "check_out_dir", "usable_cpus", "machine_info", "CHECKPOINT",
           "LEARNER_FILE", "FiniteGuard"]

_PROGRESS = ("rows", "train_time_s", "eval_time_s", "peak_memory_mb", "resident_memory_mb", "initial")  # else: summaries


def _train_groups(stream: Stream) -> Iterator[list[Any]]:
    """The training experiences grouped by original experience (one item each unless online)."""
    if not stream.mini_experiences:
        for exp in stream.train_stream:
            yield [exp]
        return
    for _, group in groupby(stream.train_stream, key=lambda e: e.origin_experience.current_experience):
        yield list(group)


def build_stream(sc: ScenarioConfig, data: Any, seed: int) -> Stream:
    """The stream a scenario config describes, over ``data``."""
    online = dict(online=sc.online, online_experience_size=sc.online_experience_size)
    if sc.kind == "drift":
        return make_drift_stream(data, sc.n_experiences, drift=sc.drift, strength=sc.drift_strength, seed=seed, **online)
    kind = sc.kind if sc.kind in KINDS else "class_incremental"  # joint: one class-incremental experience
    if sc.permuted:
        return make_stream(permuted(data, sc.n_experiences, seed), sc.n_experiences, seed=seed, kind=kind, **online)
    return make_stream(
        data, sc.n_experiences, class_order=sc.class_order, classes_per_experience=sc.classes_per_experience,
        shuffle_classes=sc.shuffle_classes, seed=seed, kind=kind, **online,
    )


def strategy_config(cfg: RunConfig) -> StrategyConfig:
    """The run's strategy recipe with the scenario's training budget (epochs, batch size) and its
    default network (for learners that train one and recipes on an MLP) applied."""
    sc = cfg.scenario
    budget: dict[str, Any] = {k: v for k, v in (("epochs", sc.epochs), ("batch_size", sc.batch_size)) if v is not None}
    if sc.online:  # single pass, one update per arriving mini-batch
        budget = {"epochs": 1, "batch_size": sc.online_batch_size}
    if sc.net and cfg.strategy.net == "mlp" and takes_net(cfg.strategy.learner):
        budget |= {"net": sc.net, "hidden": list(sc.hidden or [])}
    return StrategyConfig(**{**to_dict(cfg.strategy), **budget})


def _data_and_stream(cfg: RunConfig, cache: bool = True) -> tuple[torch.device, Any, Stream]:
    """The validated run's device, data set and stream: what a run and a dry run (``cache=False``:
    no decoded-data cache written) both start from."""
    cfg.validate()
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.scenario.dataset, cfg.scenario.data_root, cache=cache)
    return device, data, build_stream(cfg.scenario, data, cfg.seed)


def dry_run(cfg: RunConfig, streams: dict[str, Any] | None = None) -> str:
    """Everything a run checks before it trains (recipes, overrides, the data set, the stream,
    the learner and its plugins, the device), without training or writing anything; a line
    describing the run it would make. ``streams``: a dict the caller keeps across the runs of a
    grid, so that consecutive runs on the same scenario and seed build their stream once (it holds
    only the latest stream: a Permuted MNIST stream takes gigabytes)."""
    key = json.dumps([to_dict(cfg.scenario), cfg.seed, cfg.device], sort_keys=True)
    if streams is not None and key in streams:
        cfg.validate()
        device, data, stream = streams[key]
    else:
        if streams:
            streams.clear()  # free the previous stream before building the next
            gc.collect()
        device, data, stream = _data_and_stream(cfg, cache=False)
        if streams is not None:
            streams[key] = (device, data, stream)
    sc = cfg.scenario
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No loggers specified")
        strategy = build_strategy(strategy_config(cfg), input_shape=stream.input_shape, num_classes=stream.num_classes, device=device,
                                  task_incremental=stream.task_labels)
    _check_fit(strategy, sc)
    return (f"{cfg.strategy_name} ({type(strategy).__name__}, {type(strategy.model).__name__}) on {cfg.scenario_name} "
            f"({data.name}, {stream.n_experiences} experience(s){', online' if sc.online else ''}), seed {cfg.seed}, device {device}")


def _check_fit(strategy: Any, sc: ScenarioConfig) -> None:
    """Learners that cannot run on the scenario: one line saying why."""
    if isinstance(strategy, JointTraining) and sc.online:
        raise RunError("the joint learner trains once on the whole stream; it cannot run on an online scenario")
    if sc.online and not getattr(strategy, "training_scores", True):
        raise ConfigError("online runs report prequential accuracy, which reads each minibatch's scores before the update: "
                          "set strategy.learner_args.training_scores=true")


def run_experiment(
    cfg: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    trust_checkpoint: bool = False,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Train ``cfg``'s strategy over ``cfg``'s stream, writing everything to ``run_dir``.

    Returns the contents of ``metrics.json``. With ``resume=True`` the config is read from
    ``run_dir`` and training continues after the last checkpointed experience; the checkpoint is
    unpickled, and a data location the config records followed, only if ffcl wrote them on this
    machine, or with ``trust_checkpoint`` (ffcl.trust). ``data_root`` (resume only) reads the data
    from a folder of the caller's instead of the recorded one.
    """
    run_dir = Path(run_dir)
    start = time.perf_counter()
    cfg, lock, created = prepare_dir(cfg, run_dir, resume)  # holds the directory's lock until the run ends
    say = (lambda msg: None) if quiet else echo
    try:
        if resume:
            extractor = str(cfg.strategy.learner_args.get("feature_extractor") or "")  # torch.jit.load runs TorchScript
            if data_root is not None:
                cfg.scenario.data_root = data_root
            check_data_route(run_dir, cfg.scenario.dataset, cfg.scenario.data_root if data_root is None else None,
                             trust_checkpoint, "read the data from a folder of yours with --data-root DIR", extractor)
        elif data_root is not None:
            raise RunError("data_root is for a resumed run; a new run takes it in its config (scenario.data_root)")
    except BaseException:
        os.close(lock) if resume else remove_own(run_dir, created, lock)
        raise
    log_file = open(run_dir / "log.txt", "a", buffering=1)  # line-buffered: a crash loses no logged line
    with torch_settings(cfg):
        try:
            data, stream, strategy, progress = _setup(cfg, run_dir, log_file, resume, quiet, trust_checkpoint)
        except BaseException:
            log_file.close()
            if resume:
                os.close(lock)
            else:  # leave nothing this run wrote behind, --out stays usable
                remove_own(run_dir, created, lock)
            raise
        if resume:
            say(f"resuming {run_dir} after {len(progress['rows'])} experience(s)")
        try:
            return _train(cfg, run_dir, data, stream, strategy, progress, start, say, quiet)
        finally:
            close_loggers(strategy.evaluator.loggers)
            log_file.close()
            os.close(lock)


def _setup(cfg: RunConfig, run_dir: Path, log_file: Any, resume: bool, quiet: bool,
           trust_checkpoint: bool = False) -> tuple[Any, Stream, Any, dict[str, Any]]:
    """Data, stream and strategy of a run (restored from the checkpoint when resuming)."""
    device, data, stream = _data_and_stream(cfg)  # validates the config first (the seed's range included)
    RNGManager.set_random_seeds(cfg.seed)
    sc = cfg.scenario
    strategy = build_strategy(
        strategy_config(cfg),
        input_shape=stream.input_shape,
        num_classes=stream.num_classes,
        device=device,
        evaluator=run_evaluator(stream, sc, cfg.seed, log_file),
        extra_plugins=[FiniteGuard()] + ([] if quiet or stream.mini_experiences else [ProgressPlugin()]),
        task_incremental=stream.task_labels,
    )
    _check_fit(strategy, sc)
    progress: dict[str, Any] = {"rows": [], "train_time_s": [], "eval_time_s": [], "peak_memory_mb": 0.0}
    if resume:
        fresh = strategy
        if (run_dir / CHECKPOINT).exists():  # else it stopped before its first checkpoint: start afresh
            with reading_checkpoint(run_dir / CHECKPOINT, trust_checkpoint):
                strategy, _ = maybe_load_checkpoint(strategy, run_dir / CHECKPOINT, map_location=device)
        progress = getattr(strategy, "ffcl_progress", progress)
        strategy.__dict__.setdefault("ffcl_recipe", fresh.ffcl_recipe)  # checkpoints older than learner.pt
        strategy.evaluator.loggers = [TextLogger(log_file)]
        restore_test_data(strategy, stream, sc, cfg.seed)  # their test data is not checkpointed
    strategy.evaluator.loggers += make_loggers(strategy_config(cfg).loggers, run_dir, config=to_dict(cfg))  # --logger (ffcl.loggers)
    return data, stream, strategy, progress


def _train(
    cfg: RunConfig, run_dir: Path, data: Any, stream: Stream, strategy: Any, progress: dict[str, Any],
    start: float, say: Callable[[str], None], quiet: bool,
) -> dict[str, Any]:
    """Train experience after experience from where ``progress`` stands (ffcl.loop); write metrics.json."""
    sc = cfg.scenario
    device = strategy.device
    joint = isinstance(strategy, JointTraining)
    n_exp = stream.n_experiences
    say(
        f"{cfg.strategy_name} on {cfg.scenario_name} ({data.name}, {n_exp} experience(s)"
        f"{', online batch ' + str(sc.online_batch_size) if sc.online else ''}), seed {cfg.seed}, device {device}"
    )
    seen_only = sc.evaluate == "seen" and not joint
    if "initial" not in progress:  # the untrained learner, the reference b of forward transfer
        progress["initial"] = None if seen_only else evaluate_row(strategy, stream.test_stream, n_exp)

    def record(step: Step) -> str:
        row, t = step.row, step.train_time_s
        progress["rows"].append(row)
        progress["train_time_s"].append(t)
        progress["eval_time_s"].append(step.eval_time_s)
        progress["peak_memory_mb"] = max(progress["peak_memory_mb"], peak_memory_mb(device))
        progress.setdefault("resident_memory_mb", []).append(resident_memory_mb(device))
        progress.update(run_summaries(strategy))  # allocation, anytime, activity, prequential (ffcl.evaluation)
        write_csv(run_dir / "metrics.csv", progress["rows"], progress["train_time_s"])  # whole, so a retried experience never repeats
        strategy.ffcl_progress = progress
        i = step.index
        seen = sum(row[: i + 1]) / (i + 1) if not joint else sum(row) / n_exp
        return (f"[exp {i + 1}/{n_exp}] classes {'all' if joint else stream.classes_per_experience[i]} "
                f"| train {t:.1f}s | acc on seen {seen:.3f} | acc per exp " + " ".join("-" if a is None else f"{a:.2f}" for a in row))

    steps = [[stream.benchmark.train_stream]] if joint else _train_groups(stream)
    train_loop(strategy, steps, stream.test_stream, run_dir, done=len(progress["rows"]), record=record,
               class_names=stream.class_names, quiet=quiet, total=n_exp, say=say, seen_only=seen_only)
    rows = progress["rows"]
    summaries = {k: v for k, v in progress.items() if k not in _PROGRESS}
    metrics = {
        "scenario": cfg.scenario_name,
        "strategy": cfg.strategy_name,
        "dataset": data.name,
        "kind": cfg.scenario.kind + (" (permuted)" if cfg.scenario.permuted else ""),
        "seed": cfg.seed,
        "device": str(device),
        "classes_per_experience": stream.classes_per_experience,
        "accuracy_matrix": rows,
        **summarize(rows, progress["initial"]),
        "initial_accuracy": progress["initial"],
        "train_time_s": sum(progress["train_time_s"]),
        "eval_time_s": sum(progress["eval_time_s"]),
        "train_time_per_experience_s": progress["train_time_s"],
        "wall_time_s": time.perf_counter() - start,
        "peak_memory_mb": progress["peak_memory_mb"],
        "resident_memory_mb": progress["resident_memory_mb"],  # after each experience: flat unless the learner keeps more
        **{k: summaries[k] for k in ("allocation",) if k in summaries},
        **model_summary(strategy.model),
        **{k: v for k, v in summaries.items() if k != "allocation"},
        "machine": machine_info(),
    }
    write_json(run_dir / "metrics.json", metrics)
    return metrics
