"""``ffcl adapt``: continue a finished run's learner on data that arrived later.

The learner comes back from the run's checkpoint whole (network, optimiser, plugin state: the
replay buffer, EWC's importances, neuron allocation), learns the new data as further experiences,
and is evaluated after each on the old test experiences *and* the new ones, so what adapting cost
the old classes is measured, not guessed.

New classes are matched **by name** against the run's classes: a name the run knows keeps its
label, any other name becomes a new label after the run's last one (an ``npz`` without
``class_names`` has the names "0", "1", ...; an image folder, its sub-folder names). The network
grows to hold new labels (``grow``: label codes and output rows; see ``ffcl.nn``). Neuron
allocation keeps the capacity it reserved (``max_classes``): a class beyond it gets a warning and
no neurons, so reserve room in the original run if more classes will come.

The adaptation directory holds ``config.json`` (the source run and the adaptation settings),
``metrics.json``, ``log.txt`` (and ``tensorboard/``, ``wandb/``, ``csv/`` for the loggers asked for), ``learner.pt`` (safe to share) and ``checkpoint.pt``, so an
interrupted adaptation resumes with ``resume=True`` and an adaptation can be adapted again: its
"old" test experiences are then those of the original run followed by those of every adaptation
before it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.logging import TextLogger
from avalanche.training.plugins import EvaluationPlugin

from . import trust
from .checkpoint import CHECKPOINT, load_learner
from .config import RunConfig
from .data import DataError, TensorData, load_dataset, make_stream
from .experiment import build_stream, strategy_config
from .learner_file import LEARNER_FILE, SCRIPT_ARG, UntrustedScript, load_record
from .loggers import close_loggers, make_loggers
from .loop import Step, evaluate_row, resolve_device, train_loop
from .metrics import AnytimeAccuracy, peak_memory_mb
from .metrics.matrix import accuracy_drop
from .metrics.summary import matrix_summary
from .rundir import RunError, check_data_route, load_run_config, write_config, write_json

__all__ = ["adapt_run", "relabel"]


def relabel(new: TensorData, known: tuple[str, ...]) -> tuple[TensorData, dict[str, int]]:
    """``new`` with labels in the label space of a run that knows the classes ``known``.

    Classes are matched by name; unknown names get labels ``len(known), len(known) + 1, ...`` in
    the order of ``new``'s labels. Returns the relabelled data and the label of each new class name.
    """
    present = sorted(set(torch.unique(new.y_train).tolist()) | set(torch.unique(new.y_test).tolist()))
    names = list(known)
    mapping = torch.full((new.num_classes,), -1, dtype=torch.long)
    for c in present:
        name = new.class_names[c]
        if name not in names:
            names.append(name)
        mapping[c] = names.index(name)
    data = TensorData(new.name, new.x_train, mapping[new.y_train], new.x_test, mapping[new.y_test], tuple(names))
    return data, {new.class_names[c]: int(mapping[c]) for c in present}


def _grow(model: torch.nn.Module, num_classes: int) -> None:
    capacity = getattr(model, "max_classes", None)
    if capacity is not None and num_classes <= capacity:
        return
    if not hasattr(model, "grow"):
        raise RunError(f"the run's {type(model).__name__} cannot take new classes ({num_classes} needed)")
    model.grow(num_classes)


def adapt_run(
    source: str | Path | None,
    data: str | None,
    out: str | Path,
    *,
    n_experiences: int = 1,
    epochs: int | None = None,
    online: bool = False,
    data_root: str | None = None,
    device: str = "auto",
    resume: bool = False,
    quiet: bool = False,
    echo: Callable[[str], None] = print,
    trust_checkpoint: bool = False,
    weights_only: bool = False,
    loggers: list[str] | None = None,
) -> dict[str, Any]:
    """Train the learner of the finished run ``source`` on ``data`` (any ``load_dataset`` name,
    e.g. ``npz:new.npz`` or ``folder:images/``) as ``n_experiences`` further experiences, writing
    to ``out``. ``epochs`` defaults to the run's; ``online`` means one pass in minibatches of the
    run scenario's ``online_batch_size``. With ``resume=True``, ``out`` is an interrupted
    adaptation and the other settings are read from it. ``weights_only`` restores the source's
    learner from its ``learner.pt`` (no code runs, whoever made it; the optimiser and plugin state
    such as a replay buffer start afresh) instead of its checkpoint; a TorchScript
    ``feature_extractor`` it names is loaded only from a run ffcl wrote here or with
    ``trust_checkpoint`` (:func:`_learner_script`). ``loggers`` (ffcl.loggers;
    default: the run recipe's) write into ``out``. Returns the contents of metrics.json.
    """
    out = Path(out)
    start = time.perf_counter()
    if resume:
        saved = _read_config(out) if (out / "config.json").is_file() else {}
        if "adapt" not in saved:
            raise RunError(f"{out} is not an adaptation directory (no config.json from `ffcl adapt`)")
        if (out / "metrics.json").exists():
            raise RunError(f"{out} has already finished (metrics.json exists); nothing to resume")
        settings = saved["adapt"]
        check_data_route(out, settings["data"], settings["data_root"], trust_checkpoint, "start the adaptation again")
    else:
        if source is None or data is None:
            raise RunError("a new adaptation needs the source run directory and --data")
        settings = dict(source=str(source), data=data, n_experiences=n_experiences, epochs=epochs,
                        online=online, data_root=data_root, device=device, loggers=loggers, weights_only=weights_only)
        if not (Path(source) / "metrics.json").is_file():
            raise RunError(f"{source} is not a finished run (no metrics.json): finish it with `ffcl run --resume {source}` first")
        if out.exists() and any(out.iterdir()):
            raise RunError(f"{out} already exists; choose another --out (an existing directory is never overwritten)")
    weights_only = bool(settings.get("weights_only", False))  # a resumed adaptation reads its source as it began
    cfg, old_tests, old_names, old_cpe, old_root = _lineage(Path(settings["source"]), settings["data_root"],
                                                          trust_checkpoint, weights_only)
    sc = cfg.scenario
    root = settings["data_root"] or old_root
    new_data, classes = relabel(load_dataset(settings["data"], root), old_names)
    if new_data.input_shape != tuple(old_tests[0][0][0].shape):
        raise DataError(f"{settings['data']} has images of shape {new_data.input_shape}; the run's learner takes "
                        f"{tuple(old_tests[0][0][0].shape)}: resize the new images to match")
    new_stream = make_stream(new_data, settings["n_experiences"], seed=cfg.seed, online=settings["online"])
    tests = old_tests + [e.dataset for e in new_stream.test_stream]
    test_stream = benchmark_from_datasets(test=tests).test_stream  # one stream, unique experience ids
    old_test_stream = benchmark_from_datasets(test=old_tests).test_stream
    n_old = len(old_tests)

    resumable = resume and (out / CHECKPOINT).is_file()  # else it stopped before its first new experience
    script = None
    if weights_only and not resumable and (Path(settings["source"]) / LEARNER_FILE).is_file():
        script = _learner_script(Path(settings["source"]), trust_checkpoint)  # the whole file checked before anything is written
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out / "config.json", {"adapt": settings, "source_config": json.loads((Path(settings["source"]) / "config.json").read_text()),
                                          "new_classes": classes})
    log_file = open(out / "log.txt", "a")
    try:
        dev = resolve_device(settings["device"])
        if resumable or not weights_only:
            strategy = load_learner(out if resumable else settings["source"], dev, trust_checkpoint)
        else:
            strategy = load_learner(settings["source"], dev, weights_only=True, feature_extractor=script, evaluator=EvaluationPlugin(
                accuracy_metrics(experience=True, stream=True), loss_metrics(stream=True), loggers=[]))
        strategy.__dict__.setdefault("ffcl_recipe", {"config": strategy_config(cfg), "input_shape": new_data.input_shape,
                                                     "num_classes": len(old_names)})  # checkpoints older than learner.pt
        for metric in strategy.evaluator.metrics:  # the run's anytime test data is not this adaptation's stream
            if isinstance(metric, AnytimeAccuracy):
                metric.tests = []
    except BaseException:
        log_file.close()
        if not resume:
            shutil.rmtree(out, ignore_errors=True)
        raise
    say = (lambda msg: None) if quiet else echo
    try:
        names = cfg.strategy.loggers if settings.get("loggers") is None else settings["loggers"]
        strategy.evaluator.loggers = [TextLogger(log_file), *make_loggers(names, out, config=settings)]
        progress = getattr(strategy, "ffcl_adapt", None) if resumable else None
        matrix_summary(strategy, len(tests))  # counts this adaptation's test stream (ffcl.loop.evaluate_row)
        if progress is None:  # row 0: the learner as the run left it; labels it does not have score 0
            old_row = evaluate_row(strategy, old_test_stream, n_old)
            progress = {"rows": [old_row + [0.0] * (len(tests) - n_old)], "train_time_s": []}
        _grow(strategy.model, new_data.num_classes)
        if settings["online"]:
            strategy.train_epochs, strategy.train_mb_size = 1, sc.online_batch_size
        elif settings["epochs"]:
            strategy.train_epochs = settings["epochs"]
        say(f"adapting {settings['source']} ({cfg.strategy_name} on {cfg.scenario_name}) to {settings['data']}: "
            f"classes {classes}, {len(progress['rows']) - 1}/{settings['n_experiences']} experience(s) done")

        def record(step: Step) -> str:
            progress["train_time_s"].append(step.train_time_s)
            progress["rows"].append(step.row)
            strategy.ffcl_adapt = progress
            return (f"[new exp {step.index + 1}/{new_stream.n_experiences}] classes {new_stream.classes_per_experience[step.index]} | "
                    f"old {_mean(step.row[:n_old]):.3f} | new {_mean(step.row[n_old:]):.3f}")

        train_loop(strategy, ([exp] for exp in new_stream.train_stream), test_stream, out, done=len(progress["rows"]) - 1,
                   record=record, class_names=new_data.class_names, quiet=True, total=new_stream.n_experiences, say=say)
    finally:
        close_loggers(strategy.evaluator.loggers)
        log_file.close()
    rows = progress["rows"]
    metrics = {
        "source": settings["source"],
        "data": settings["data"],
        "new_classes": classes,
        "class_names": list(new_data.class_names),
        "strategy": cfg.strategy_name,
        "scenario": cfg.scenario_name,
        "seed": cfg.seed,
        "device": str(strategy.device),
        "columns": [f"old exp {j}" for j in range(n_old)] + [f"new exp {j}" for j in range(len(tests) - n_old)],
        "classes_per_experience": old_cpe + new_stream.classes_per_experience,
        "accuracy_matrix": rows,  # row 0: before adapting; row i: after new experience i
        "final_average_accuracy": _mean(rows[-1]),
        "old_accuracy_before": _mean(rows[0][:n_old]),
        "old_accuracy_after": _mean(rows[-1][:n_old]),
        "new_accuracy_after": _mean(rows[-1][n_old:]),
        "average_forgetting": accuracy_drop(rows, n_old),  # of the run's experiences (docs/metrics.md)
        "bwt": None,
        "train_time_s": sum(progress["train_time_s"]),
        "wall_time_s": time.perf_counter() - start,
        "peak_memory_mb": peak_memory_mb(strategy.device),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _lineage(source: Path, data_root: str | None, trusted: bool,
             weights_only: bool) -> tuple[RunConfig, list[Any], tuple[str, ...], list[list[int]], str | None]:
    """What a finished run or adaptation ``source`` has learnt: the original run's config, the test
    experiences of everything it was trained on (the run's, then each adaptation's in order), its
    class names, the classes of each of those experiences, and the data root its data came from.

    A data location recorded in ``source`` is followed only if ffcl wrote its config.json here or
    the user trusts it (``trusted``; ffcl.rundir.check_data_route); else the user's ``data_root``
    is read instead. With ``weights_only`` a recorded data root is never used."""
    saved = _read_config(source)
    how = "name a data folder of yours with --data-root DIR"
    if "adapt" not in saved:  # the original run
        cfg = load_run_config(source)
        if cfg.scenario.kind in ("task_incremental", "domain_incremental"):
            raise RunError(f"{source} is a {cfg.scenario.kind} run; ffcl adapt brings new classes into one label space, "
                           "which task and domain labels do not have: adapt a class_incremental, joint or drift run")
        root = _old_root(source, cfg.scenario.dataset, cfg.scenario.data_root, data_root, trusted, weights_only, how)
        data = load_dataset(cfg.scenario.dataset, root)
        stream = build_stream(cfg.scenario, data, cfg.seed)
        return cfg, [e.dataset for e in stream.test_stream], stream.class_names, list(stream.classes_per_experience), root
    a = saved["adapt"]
    cfg, tests, names, cpe, root = _lineage(Path(a["source"]), data_root, trusted, weights_only)
    own = _old_root(source, a["data"], a["data_root"], data_root, trusted, weights_only, how)
    data, _ = relabel(load_dataset(a["data"], own or root), names)
    stream = make_stream(data, a["n_experiences"], seed=cfg.seed, online=a["online"])
    return cfg, tests + [e.dataset for e in stream.test_stream], data.class_names, cpe + list(stream.classes_per_experience), root


def _old_root(run_dir: Path, dataset: str, recorded: str | None, given: str | None, trusted: bool, weights_only: bool,
              how: str) -> str | None:
    """The data root to read ``run_dir``'s data from: the recorded one if the directory is trusted
    (and not ``weights_only``), else the user's (``given``, or the default root)."""
    if weights_only or (given is not None and not (trusted or trust.known(run_dir / "config.json"))):
        check_data_route(run_dir, dataset, None, trusted, how)  # a recorded npz:/folder: path still needs trust
        return given
    check_data_route(run_dir, dataset, recorded, trusted, how)
    return recorded


def _learner_script(source: Path, trusted: bool) -> str | None:
    """The TorchScript ``feature_extractor`` to load with ``source``'s learner.pt (whole file checked):
    None if it names none; the path it names if the user trusts the source (``trusted``), or if ffcl
    wrote ``source``'s config.json on this machine (ffcl.trust) and that records the same path. Any
    other is a one-line RunError: loading it would run the module (``torch.jit.load``)."""
    path = source / LEARNER_FILE
    try:
        load_record(path)
        return None
    except UntrustedScript as e:
        named = e.path
    config = _read_config(source)
    while isinstance(config, dict) and "adapt" in config:  # an adaptation records its source's config
        config = config.get("source_config")
    strategy = config.get("strategy") if isinstance(config, dict) else None
    args = strategy.get("learner_args") if isinstance(strategy, dict) else None
    recorded = args.get(SCRIPT_ARG) if isinstance(args, dict) else None
    if not (trusted or (trust.known(source / "config.json") and recorded == named)):
        raise RunError(f"{path} names a TorchScript {SCRIPT_ARG} {named!r}, which loading would run (torch.jit.load), and ffcl did "
                       "not write this run on this machine: pass --trust-checkpoint if you trust its source and that file")
    load_record(path, named)
    return named


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run or adaptation directory (no config.json)")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise RunError(f"{path} is not valid JSON ({e})") from None


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)
