"""One run from recipe to run directory: data -> stream -> strategy -> metrics -> files.

The run directory holds:

* ``config.json``: the resolved recipe (scenario, strategy, seed, device);
* ``metrics.json``: the accuracy matrix ``a[i][j]`` (accuracy on experience j after training
  experience i), final average accuracy, average forgetting, BWT, times and peak memory;
* ``metrics.csv``: one row per (training step, test experience);
* ``log.txt``: every metric Avalanche's evaluator logged (its TextLogger);
* ``tensorboard/``, ``wandb/``, ``csv/``: the same metrics through the loggers the recipe's
  ``loggers`` (or ``--logger``) names (ffcl.loggers);
* ``checkpoint.pt``: the learner after the last finished experience (Avalanche's checkpoint of the
  whole strategy: model, optimiser, plugin state such as replay buffers), so an interrupted run
  resumes with ``resume=True`` and a finished one can be evaluated or continued later. It is a
  pickle: ffcl loads only those it wrote itself (``ffcl.trust``);
* ``learner.pt``: the same learner in the weights-only format that is safe to share and to open
  (``ffcl.learner_file``): the file to send to others.

An existing run directory is never overwritten.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any, Callable

import dill
import torch
from avalanche.core import SupervisedPlugin
from avalanche.checkpointing import maybe_load_checkpoint, save_checkpoint
from avalanche.evaluation.metrics import accuracy_metrics, bwt_metrics, forgetting_metrics, loss_metrics, timing_metrics
from avalanche.logging import TextLogger
from avalanche.training import JointTraining
from avalanche.training.determinism.rng_manager import RNGManager
from avalanche.training.plugins import EvaluationPlugin
from tqdm.auto import tqdm

from .allocation import NeuronAllocation
from .config import ConfigError, RunConfig, ScenarioConfig, StrategyConfig, from_dict, load_scenario, load_strategy, to_dict
from .data import DataError, Stream, load_dataset, make_stream
from .data.loaders import dataset_tensors
from .data.streams import KINDS, make_drift_stream, permuted
from . import trust
from .files import LOCK_FD_ENV, LOCK_FILE, atomic_path, inherited_lock, lock_run_dir, refuse_link
from .learner_file import LEARNER_FILE, read_learner, save_learner
from .loggers import close_loggers, make_loggers
from .metrics import (AnytimeAccuracy, BlockActivity, MatrixSummary, PrequentialAccuracy, accuracy_row, peak_memory_mb,
                      resident_memory_mb, summarize)
from .progress import ProgressPlugin
from .strategies import build_strategy
from .strategies.registry import takes_net

__all__ = ["RunError", "run_experiment", "dry_run", "resolve_device", "load_run_config", "load_learner", "write_checkpoint", "write_benchmark", "check_benchmark"]

CHECKPOINT = "checkpoint.pt"


class RunError(RuntimeError):
    """The run cannot start as asked (e.g. its directory exists); the message says what to do."""


class FiniteGuard(SupervisedPlugin):
    """Stop training when a weight becomes NaN or infinite (checked once per epoch, so no
    per-step host synchronisation), naming the parameter and the experience. The run's last
    checkpoint, written after the previous experience, stays as it was."""

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        for name, p in strategy.model.named_parameters():
            if not torch.isfinite(p).all():
                raise RunError(
                    f"experience {strategy.clock.train_exp_counter}, epoch {strategy.clock.train_exp_epochs}: "
                    f"parameter {name} became NaN or infinite; lower the learning rate (strategy.lr) and resume "
                    "from the last checkpoint or start again"
                )


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(device)


def load_run_config(run_dir: Path) -> RunConfig:
    """The resolved config a run directory was made with."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no config.json)")
    data: Any = None
    try:
        data = json.loads(path.read_text())
        data["scenario"] = from_dict(ScenarioConfig, data["scenario"], f"{path}: scenario")
        data["strategy"] = from_dict(StrategyConfig, data["strategy"], f"{path}: strategy")
        return RunConfig(**data)
    except (ValueError, KeyError, TypeError) as e:  # JSON errors are ValueErrors; ConfigError passes through as one
        if isinstance(e, ConfigError):
            raise
        kind = "an adaptation directory (continue it with `ffcl adapt DIR --resume`)" if isinstance(data, dict) and "adapt" in data else "not valid"
        raise RunError(f"{path} is {kind} ({type(e).__name__}: {e})") from None


def check_out_dir(out: Path) -> None:
    """A one-line error if ``out``, or a folder above it, is an existing file."""
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise RunError(f"--out {out}: {blocking} is a file, not a folder; choose another --out")


@contextlib.contextmanager
def _reading_checkpoint(path: Path, trust_checkpoint: bool) -> Iterator[None]:
    """Unpickle only a checkpoint ffcl wrote here (ffcl.trust); a damaged one is a one-line error."""
    trust.check(path, trust_checkpoint)
    with contextlib.redirect_stdout(io.StringIO()):  # Avalanche prints its device mapping
        try:
            yield
        except Exception as e:  # truncated, corrupted or not a checkpoint at all
            raise RunError(f"{path} cannot be read as an ffcl checkpoint ({type(e).__name__}); it is truncated or not a checkpoint") from None


def load_learner(run_dir: str | Path, device: str | torch.device = "cpu", trust_checkpoint: bool = False,
                 weights_only: bool = False, **build_kwargs: Any) -> Any:
    """The strategy saved in a run or adaptation directory.

    By default from its checkpoint, whole (model, optimiser, plugin state); only a checkpoint ffcl
    wrote on this machine is unpickled, unless ``trust_checkpoint`` (ffcl.trust). With
    ``weights_only`` from ``learner.pt``, which runs no code whoever made it: the recipe rebuilt
    with the saved model state (``build_kwargs`` go to ``build_strategy``; see ffcl.learner_file).
    """
    if weights_only:
        path = Path(run_dir) / LEARNER_FILE
        if not path.is_file():
            raise RunError(f"{run_dir} has no {LEARNER_FILE} (runs made before ffcl wrote it have only {CHECKPOINT})")
        return read_learner(path, device, **build_kwargs)
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise RunError(f"{run_dir} has no {CHECKPOINT}; was the run started?")
    with _reading_checkpoint(path, trust_checkpoint), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, pickle_module=dill, map_location=device, weights_only=False)["strategy"]


def _write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def _prepare_dir(cfg: RunConfig | None, run_dir: Path, resume: bool) -> tuple[RunConfig, int, bool]:
    """The run's config, the descriptor of its directory's lock (ffcl.files) and whether this call
    made the directory. A directory that is a link, or that another live process holds, is refused."""
    refuse_link(run_dir)
    if resume:
        if not (run_dir / "config.json").is_file():
            load_run_config(run_dir)  # its one-line error
        lock = _lock(run_dir)
        try:
            cfg = load_run_config(run_dir)
            if (run_dir / "metrics.json").exists():
                raise RunError(f"{run_dir} has already finished (metrics.json exists); nothing to resume")
        except BaseException:
            os.close(lock)
            raise
        return cfg, lock, False
    if cfg is None:
        raise RunError("a new run needs a RunConfig")
    check_out_dir(run_dir)
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        raise RunError(
            f"run directory {run_dir} already exists; choose another --out, or resume it with `ffcl run --resume {run_dir}`"
        )
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = _lock(run_dir)
    except OSError as e:
        raise RunError(f"cannot write the run directory {run_dir} ({e.strerror}); choose another --out") from None
    try:
        _write_json(run_dir / "config.json", to_dict(cfg))
    except BaseException:
        _remove_own(run_dir, created, lock)
        raise
    return cfg, lock, created


def _lock(run_dir: Path) -> int:
    """Hold ``run_dir``'s lock: the one ``ffcl compare`` handed down, or a fresh one; a one-line
    error if another process holds it (a live run)."""
    lock = inherited_lock(run_dir)
    if lock is None:
        lock = lock_run_dir(run_dir)
    if lock is None:
        raise RunError(f"{run_dir} is being run by another ffcl process (it holds {run_dir / LOCK_FILE}); "
                       "wait for it to finish, or stop it")
    return lock


def _remove_own(run_dir: Path, created: bool, lock: int) -> None:
    """Undo a new run that failed before training: remove the directory if this run made it (all
    in it is this run's), else only the files this run wrote (never through a link); release the lock."""
    if created and not run_dir.is_symlink():
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(lock)
        return
    for name in ("config.json", "log.txt"):
        path = run_dir / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    if os.environ.get(LOCK_FD_ENV) != str(lock):  # a lock handed down stays: its launcher holds it too
        with contextlib.suppress(OSError):
            (run_dir / LOCK_FILE).unlink()
    os.close(lock)


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
    grid, so that runs on the same scenario and seed build their stream once."""
    key = json.dumps([to_dict(cfg.scenario), cfg.seed, cfg.device], sort_keys=True)
    if streams is not None and key in streams:
        cfg.validate()
        device, data, stream = streams[key]
    else:
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


def sample_test_data(stream: Stream, size: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per test experience, a fixed random subset of at most ``size`` test samples (x, y)."""
    g = torch.Generator().manual_seed(seed)
    tests = []
    for exp in stream.test_stream:
        x, y, _ = dataset_tensors(exp.dataset)
        keep = torch.randperm(len(y), generator=g)[:size]
        tests.append((x[keep], y[keep]))
    return tests


def run_experiment(
    cfg: RunConfig | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    trust_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train ``cfg``'s strategy over ``cfg``'s stream, writing everything to ``run_dir``.

    Returns the contents of ``metrics.json``. With ``resume=True`` the config is read from
    ``run_dir`` and training continues after the last checkpointed experience; the checkpoint is
    unpickled only if ffcl wrote it on this machine, or with ``trust_checkpoint`` (ffcl.trust).
    """
    run_dir = Path(run_dir)
    start = time.perf_counter()
    cfg, lock, created = _prepare_dir(cfg, run_dir, resume)  # holds the directory's lock until the run ends
    say = (lambda msg: None) if quiet else echo
    log_file = open(run_dir / "log.txt", "a", buffering=1)  # line-buffered: a crash loses no logged line
    with _torch_settings(cfg):
        try:
            data, stream, strategy, progress = _setup(cfg, run_dir, log_file, resume, quiet, trust_checkpoint)
        except BaseException:
            log_file.close()
            if resume:
                os.close(lock)
            else:  # leave nothing this run wrote behind, --out stays usable
                _remove_own(run_dir, created, lock)
            raise
        if resume:
            say(f"resuming {run_dir} after {len(progress['rows'])} experience(s)")
        try:
            return _train(cfg, run_dir, data, stream, strategy, progress, start, say, quiet)
        finally:
            close_loggers(strategy.evaluator.loggers)
            log_file.close()
            os.close(lock)


@contextlib.contextmanager
def _torch_settings(cfg: RunConfig) -> Iterator[None]:
    """The run's thread count and deterministic algorithms, for the run only (then as they were)."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what deterministic cuBLAS needs
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _setup(cfg: RunConfig, run_dir: Path, log_file: Any, resume: bool, quiet: bool,
           trust_checkpoint: bool = False) -> tuple[Any, Stream, Any, dict[str, Any]]:
    """Data, stream and strategy of a run (restored from the checkpoint when resuming)."""
    device, data, stream = _data_and_stream(cfg)  # validates the config first (the seed's range included)
    RNGManager.set_random_seeds(cfg.seed)
    sc = cfg.scenario
    strategy_cfg = strategy_config(cfg)
    ours = [BlockActivity(sample_test_data(stream, 100, cfg.seed))]  # metrics that hold test data (not checkpointed)
    if sc.anytime_every:
        ours.append(AnytimeAccuracy(sample_test_data(stream, sc.anytime_test_size, cfg.seed), sc.anytime_every))
    evaluator = EvaluationPlugin(
        accuracy_metrics(experience=True, stream=True),
        loss_metrics(stream=True),
        timing_metrics(experience=True),
        forgetting_metrics(stream=True),  # Avalanche's, logged; metrics.json has the matrix-based ones
        bwt_metrics(stream=True),
        MatrixSummary(stream.n_experiences),
        *([PrequentialAccuracy(sc.prequential_window, sc.anytime_every or 1000)] if sc.online else []),
        *ours,
        loggers=[TextLogger(log_file)],
    )
    strategy = build_strategy(
        strategy_cfg,
        input_shape=stream.input_shape,
        num_classes=stream.num_classes,
        device=device,
        evaluator=evaluator,
        extra_plugins=[FiniteGuard()] + ([] if quiet or stream.mini_experiences else [ProgressPlugin()]),
        task_incremental=stream.task_labels,
    )
    _check_fit(strategy, sc)
    progress: dict[str, Any] = {"rows": [], "train_time_s": [], "eval_time_s": [], "peak_memory_mb": 0.0}
    if resume:
        fresh = strategy
        if (run_dir / CHECKPOINT).exists():  # else it stopped before its first checkpoint: start afresh
            with _reading_checkpoint(run_dir / CHECKPOINT, trust_checkpoint):
                strategy, _ = maybe_load_checkpoint(strategy, run_dir / CHECKPOINT, map_location=device)
        progress = getattr(strategy, "ffcl_progress", progress)
        strategy.__dict__.setdefault("ffcl_recipe", fresh.ffcl_recipe)  # checkpoints older than learner.pt
        strategy.evaluator.loggers = [TextLogger(log_file)]
        fresh = {type(m): m for m in ours}
        for metric in strategy.evaluator.metrics:
            if type(metric) in fresh:  # their test data is not checkpointed
                metric.tests = fresh[type(metric)].tests
    strategy.evaluator.loggers += make_loggers(strategy_config(cfg).loggers, run_dir, config=to_dict(cfg))  # --logger (ffcl.loggers)
    return data, stream, strategy, progress


def _train(
    cfg: RunConfig, run_dir: Path, data: Any, stream: Stream, strategy: Any, progress: dict[str, Any],
    start: float, say: Callable[[str], None], quiet: bool,
) -> dict[str, Any]:
    """Train experience after experience from where ``progress`` stands; write metrics.json."""
    sc = cfg.scenario
    device = strategy.device
    joint = isinstance(strategy, JointTraining)
    n_exp = stream.n_experiences
    say(
        f"{cfg.strategy_name} on {cfg.scenario_name} ({data.name}, {n_exp} experience(s)"
        f"{', online batch ' + str(sc.online_batch_size) if sc.online else ''}), seed {cfg.seed}, device {device}"
    )
    groups = [[stream.benchmark.train_stream]] if joint else _train_groups(stream)
    if "initial" not in progress:  # the untrained learner, the reference b of forward transfer
        progress["initial"] = accuracy_row(strategy.eval(stream.test_stream), n_exp)
    for i, group in enumerate(groups):
        if i < len(progress["rows"]):
            continue
        bar = tqdm(group, desc=f"exp {i + 1}/{n_exp}", leave=False, disable=quiet or len(group) == 1)
        t0 = time.perf_counter()
        for exp in bar:
            strategy.train(exp)
        t1 = time.perf_counter()
        row = accuracy_row(strategy.eval(stream.test_stream), n_exp)
        progress["rows"].append(row)
        progress["train_time_s"].append(t1 - t0)
        progress["eval_time_s"].append(time.perf_counter() - t1)
        progress["peak_memory_mb"] = max(progress["peak_memory_mb"], peak_memory_mb(device))
        progress.setdefault("resident_memory_mb", []).append(resident_memory_mb(device))
        for plugin in strategy.plugins:
            if isinstance(plugin, NeuronAllocation):  # neurons per class and free capacity, per block
                progress["allocation"] = plugin.state()
        for metric in strategy.evaluator.metrics:
            if isinstance(metric, AnytimeAccuracy):
                progress["anytime"] = list(metric.curve)
            if isinstance(metric, BlockActivity) and metric.history:
                progress["activity"] = list(metric.history)
            if isinstance(metric, PrequentialAccuracy):
                progress["prequential"] = {"samples": metric.samples, "window": metric.window, "cumulative": metric.result(),
                                           "last_window": metric.window_accuracy(), "curve": list(metric.curve)}
        _write_csv(run_dir / "metrics.csv", progress["rows"], progress["train_time_s"])  # whole, so a retried experience never repeats
        strategy.ffcl_progress = progress
        write_checkpoint(strategy, run_dir / CHECKPOINT)
        save_learner(strategy, run_dir / LEARNER_FILE, stream.class_names)
        seen = sum(row[: i + 1]) / (i + 1) if not joint else sum(row) / n_exp
        say(
            f"[exp {i + 1}/{n_exp}] classes {'all' if joint else stream.classes_per_experience[i]} "
            f"| train {t1 - t0:.1f}s | acc on seen {seen:.3f} | acc per exp "
            + " ".join(f"{a:.2f}" for a in row)
        )
    rows = progress["rows"]
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
        **({"allocation": progress["allocation"]} if "allocation" in progress else {}),
        **({"kept_bytes": strategy.model.kept_bytes()} if hasattr(strategy.model, "kept_bytes") else {}),
        **({"anytime": progress["anytime"]} if "anytime" in progress else {}),
        **({"activity": progress["activity"]} if "activity" in progress else {}),
        **({"prequential": progress["prequential"]} if "prequential" in progress else {}),
        "machine": machine_info(),
    }
    _write_json(run_dir / "metrics.json", metrics)
    return metrics


def usable_cpus() -> list[int]:
    """The CPU cores this process may run on (its affinity where the OS tells it)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def machine_info() -> dict[str, Any]:
    """The machine and software a measurement ran on (what reproducing it needs): written with
    every run's metrics and every benchmark's JSON."""
    from importlib.metadata import version

    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": len(usable_cpus()),
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "avalanche-lib", "numpy", "scikit-learn")},
        "ffcl": version("ffcl"),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_benchmark(path: Path, **fields: Any) -> None:
    """A benchmark's JSON: the command line that produced it, its ``fields`` and :func:`machine_info`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, {"command": " ".join(sys.argv), **fields, "machine": machine_info()})
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


def write_checkpoint(strategy: Any, path: str | Path) -> None:
    """Avalanche's whole-strategy checkpoint (``save_checkpoint``), written atomically and recorded
    as trusted on this machine (ffcl.trust); restore it with Avalanche's ``maybe_load_checkpoint``
    or :func:`load_learner`. Use it instead of calling ``save_checkpoint`` directly from a script:

    dill must pickle classes by reference here. With the dill and typing_extensions installed here,
    Avalanche's ``save_checkpoint`` of any strategy with an optimiser (Naive with SGD included)
    fails with "Can't pickle sentinel" otherwise, and ``torch.optim.adam`` names both a module and a
    function, so dill cannot locate ``torch.optim.adam.Adam`` by value either.
    """
    path = Path(path)
    byref = dill.settings["byref"]
    dill.settings["byref"] = True
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", dill.PicklingWarning)
            save_checkpoint(strategy, tmp)
            trust.remember(tmp)  # before it takes its name: a checkpoint on disk is always one ffcl recorded
    finally:
        dill.settings["byref"] = byref


def _write_csv(path: Path, rows: list[list[float]], train_times: list[float]) -> None:
    """metrics.csv from the accuracy matrix so far, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trained_experience", "test_experience", "accuracy", "train_time_s"])
        for step, (row, train_time) in enumerate(zip(rows, train_times)):
            for j, acc in enumerate(row):
                w.writerow([step, j, f"{acc:.6f}", f"{train_time:.3f}"])
