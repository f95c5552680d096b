"""Hostile and faulty input (issue 26, items 3 to 7): nothing deleted outside what ffcl wrote or
through a link, memory bounded by the data, StreamLearner labels of one type, locked and
parent-bound grid runs, and one clear line for each fault."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ffcl import StreamLearner
from ffcl.cli import main
from ffcl.compare import COLUMNS, FAILED_HEADER, write_comparison
from ffcl.config import ConfigError
from ffcl.data import DataError, load_dataset
from ffcl.files import LOCK_FILE, lock_run_dir
from ffcl.learner_file import load_record

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--seed", "0", "--threads", "1", "--set", "scenario.n_experiences=2"]


def one_line_error(capsys, *words):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ffcl: error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def ncm_run(tmp_path_factory):
    """A finished ncm run on Split-Digits, as `ffcl compare --strategies ncm` names it."""
    out = tmp_path_factory.mktemp("grid") / "ncm-seed0"
    assert main(["run", "--strategy", "ncm", "--out", str(out), "--quiet", *FAST]) == 0
    return out


# ------------------------------------------------------------------ item 3: never delete through a link


def test_compare_refuses_a_run_directory_that_is_a_link(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("config.json", "log.txt", "metrics.csv"):
        (mine / name).write_text(f"the user's {name}")
    (tmp_path / "OUT").mkdir()
    (tmp_path / "OUT" / "ncm-seed0").symlink_to(mine)
    assert main(["compare", "--strategies", "ncm", "--out", str(tmp_path / "OUT")]) == 2
    one_line_error(capsys, "symbolic link")
    assert sorted(p.name for p in mine.iterdir()) == ["config.json", "log.txt", "metrics.csv"]
    assert all((mine / n).read_text() == f"the user's {n}" for n in ("config.json", "log.txt", "metrics.csv"))


def test_compare_never_deletes_files_it_did_not_write(tmp_path, capsys):
    run = tmp_path / "OUT" / "ncm-seed0"  # the names of an unfinished run's files, but not ffcl's
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"mine": true}')
    (run / "log.txt").write_text("my log")
    assert main(["compare", "--strategies", "ncm", "--out", str(tmp_path / "OUT")]) == 2
    one_line_error(capsys, "ncm-seed0")
    assert (run / "config.json").read_text() == '{"mine": true}' and (run / "log.txt").read_text() == "my log"


def test_run_failing_in_an_existing_folder_keeps_the_folder(tmp_path, capsys):
    out = tmp_path / "given"
    out.mkdir()
    assert main(["run", "--out", str(out), "--set", "scenario.dataset='npz:/no/such.npz'", *FAST]) == 2
    one_line_error(capsys, "not found")
    assert out.is_dir() and list(out.iterdir()) == []  # what the run wrote is gone, the user's folder is not


def test_run_refuses_out_that_is_a_link(tmp_path, capsys):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "link").symlink_to(target)
    assert main(["run", "--out", str(tmp_path / "link"), *FAST]) == 2
    one_line_error(capsys, "symbolic link")
    assert list(target.iterdir()) == []


# ------------------------------------------------------------------ item 4: memory bounded on hostile sizes


def test_npz_labels_are_dense_and_bounded_by_the_data(tmp_path):
    x = np.random.default_rng(0).random((40, 4, 4), dtype=np.float32)
    y = np.repeat([3, 7, 10**9, 12], 10)
    np.savez(tmp_path / "huge.npz", x=x, y=y)
    data = load_dataset(f"npz:{tmp_path / 'huge.npz'}")
    assert data.class_names == ("3", "7", "12", "1000000000")
    assert sorted(set(data.y_train.tolist()) | set(data.y_test.tolist())) == [0, 1, 2, 3]


def _hostile_learner_file(path: Path, **changes) -> None:
    learner = StreamLearner("sffa", hidden=[32], learner_args={"k": 4})
    d = load_dataset("digits")
    learner.partial_fit(d.x_train[:60].numpy(), d.y_train[:60].numpy())
    learner.save(path)
    record = torch.load(path, weights_only=True)
    for key, value in changes.items():
        record[key] = value
    torch.save(record, path)


def test_learner_file_sizes_are_checked_against_its_tensors(tmp_path):
    _hostile_learner_file(tmp_path / "big.pt", num_classes=10**8)
    with pytest.raises(ConfigError, match="num_classes is 100000000, but its tensors hold at most"):
        StreamLearner.load(tmp_path / "big.pt")


def test_stream_learner_refuses_a_capacity_that_does_not_fit():
    d = load_dataset("digits")
    learner = StreamLearner("sffa", hidden=[32], learner_args={"k": 4}, max_classes=10**9)
    with pytest.raises(ValueError, match="lower max_classes"):
        learner.partial_fit(d.x_train[:20].numpy(), d.y_train[:20].numpy())
    assert not hasattr(learner, "classes_") and not hasattr(learner, "n_features_in_")  # unchanged


HOSTILE = r"""
import sys, numpy as np, torch
from ffcl import StreamLearner
from ffcl.data import load_dataset
d = load_dataset("digits")
for what, path in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        if what == "normal":
            learner = StreamLearner("sffa", hidden=[32], learner_args={"k": 4})
            learner.partial_fit(d.x_train[:60].numpy(), d.y_train[:60].numpy())
            learner.save(path)
            print(what, "ok", len(StreamLearner.load(path).classes_))
        elif what == "npz":
            print(what, "ok", load_dataset("npz:" + path).num_classes)
        elif what == "learner":
            StreamLearner.load(path)
        else:
            StreamLearner("sffa", hidden=[32], learner_args={"k": 4}, max_classes=10**9).partial_fit(d.x_train[:20].numpy(), d.y_train[:20].numpy())
    except ValueError as e:  # ConfigError and DataError are ValueErrors: one line, no MemoryError
        print(what, "refused:", str(e).splitlines()[0])
"""


@pytest.mark.slow
def test_hostile_sizes_under_a_memory_limit(tmp_path):
    """Under `ulimit -v` (address space: a normal run peaks at about 3.8 GB here, most of it torch's
    libraries), a normal learner trains, saves and loads, and each hostile size is refused in one line."""
    _hostile_learner_file(tmp_path / "big.pt", num_classes=10**8)
    np.savez(tmp_path / "huge.npz", x=np.zeros((20, 4, 4), np.float32), y=np.repeat([0, 10**9], 10))
    cases = ["normal", str(tmp_path / "ok.pt"), "npz", str(tmp_path / "huge.npz"), "learner", str(tmp_path / "big.pt"), "capacity", "-"]
    done = subprocess.run(["bash", "-c", 'ulimit -v 5000000; exec "$0" -c "$@"', sys.executable, HOSTILE, *cases],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    results = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert results["normal"] == "ok 10"
    assert results["npz"] == "ok 2"
    assert results["learner"].startswith("refused:") and "num_classes" in results["learner"]
    assert results["capacity"].startswith("refused:") and "lower max_classes" in results["capacity"]


# ------------------------------------------------------------------ item 5: StreamLearner label types


def _state(learner):
    return {k: v.clone() for k, v in learner.strategy_.model.state_dict().items()}


def test_stream_learner_refuses_labels_of_another_type_and_stays_unchanged():
    d = load_dataset("digits")
    x, y = d.x_train[:90].numpy(), d.y_train[:90].numpy()
    learner = StreamLearner("sffa", hidden=[32], learner_args={"k": 4})
    learner.partial_fit(x[:30], y[:30] % 3)
    classes, state, batches = learner.classes_.copy(), _state(learner), learner._n_batches
    with pytest.raises(ValueError, match="y holds string labels, but this learner's classes are numbers"):
        learner.partial_fit(x[30:60], np.array(["a", "b", "c"])[y[30:60] % 3])
    with pytest.raises(ValueError, match="label type"):  # scikit-learn's own refusal of a mix
        learner.partial_fit(x[30:32], np.array([1, "a"], dtype=object))
    with pytest.raises(ValueError, match="shape"):  # new labels with a wrong input: refused before they join
        learner.partial_fit(x[30:60, :, :4], y[30:60] % 3 + 5)
    assert learner.classes_.tolist() == classes.tolist() and learner._n_batches == batches
    assert all(torch.equal(v, state[k]) for k, v in _state(learner).items())
    learner.partial_fit(x[60:90], y[60:90] % 3)  # integers again: fine
    assert learner.classes_.tolist() == [0, 1, 2]


def test_stream_learner_file_whose_classes_disagree_with_its_weights_is_refused(tmp_path):
    d = load_dataset("digits")
    learner = StreamLearner("sffa", hidden=[32], learner_args={"k": 4})
    learner.partial_fit(d.x_train[:60].numpy(), d.y_train[:60].numpy())
    learner.save(tmp_path / "l.pt")
    for tamper, words in [
        (lambda r: r["extra"]["stream_learner"].__setitem__("classes", ["a"]), "differ from the class names"),
        (lambda r: (r["extra"]["stream_learner"].__setitem__("classes", ["a"]), r.__setitem__("class_names", ["a"])), "weights hold 10"),
        (lambda r: r["extra"]["stream_learner"].__setitem__("classes", [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]), "repeated"),
        (lambda r: r["extra"]["stream_learner"].pop("input_shape"), "'input_shape' is missing"),
        (lambda r: r["extra"]["stream_learner"]["params"].__setitem__("colour", 3), "parameters do not fit"),
        (lambda r: r["extra"]["stream_learner"].__setitem__("prequential", [5, 2]), "counters"),
        (lambda r: r["state"].__setitem__(next(iter(r["state"])), torch.zeros(3, 3)), "has shape [3, 3]"),
        (lambda r: r["state"].pop(next(iter(r["state"]))), "lacks the tensor"),
        (lambda r: r.pop("input_shape"), "lacks 'input_shape'"),
    ]:
        record = torch.load(tmp_path / "l.pt", weights_only=True)
        tamper(record)
        torch.save(record, tmp_path / "t.pt")
        with pytest.raises(ConfigError, match="damaged or was edited") as e:
            StreamLearner.load(tmp_path / "t.pt")
        assert words in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------ item 6: locks, waiting, children that die with the grid


def _compare(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "ffcl.cli", "compare", "--strategies", "ncm", "--out", str(out),
                             "--set", "scenario.n_experiences=2", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_compare_waits_for_a_run_another_process_holds(tmp_path):
    out = tmp_path / "OUT"
    (out / "ncm-seed0").mkdir(parents=True)
    (out / "ncm-seed0.failed.txt").write_text(FAILED_HEADER + "an earlier attempt failed\n")  # ffcl's: removed on success
    (out / "other.failed.txt").write_text("the user's notes")  # not ffcl's: kept
    lock = lock_run_dir(out / "ncm-seed0")  # as a live run holds it
    proc = _compare(out)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ncm-seed0: another ffcl process is running it; waiting for it to finish", line + proc.stderr.read()
        time.sleep(1)
        assert proc.poll() is None and not (out / "ncm-seed0" / "config.json").exists()
    finally:
        os.close(lock)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "ncm-seed0: running" in stdout and "| ncm | 0 |" in (out / "comparison.md").read_text()
    assert not (out / "ncm-seed0.failed.txt").exists() and (out / "other.failed.txt").read_text() == "the user's notes"
    assert lock_run_dir(out / "ncm-seed0") is not None  # released


def _children(pid):
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_runs_die_with_a_killed_compare(tmp_path):
    proc = _compare(tmp_path / "OUT")
    try:
        deadline, kids = time.time() + 120, []
        while not kids and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            kids = _children(proc.pid)
        assert kids, proc.stderr.read() if proc.poll() is not None else "no run started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while any(_alive(k) for k in kids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(k) for k in kids)
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------ item 7: one clear line each


def test_ray_with_a_bad_address_is_one_line_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("ray")
    assert main(["compare", "--strategies", "ncm", "--executor", "ray", "--address", "BAD", "--out", str(tmp_path / "g")]) == 2
    one_line_error(capsys, "cannot connect to Ray at 'BAD'")
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("change,words", [
    (lambda m: m.pop("scenario"), "'scenario' is missing"),
    (lambda m: m.__setitem__("train_time_s", "fast"), "'train_time_s' is 'fast', not a number"),
    (lambda m: m.__setitem__("accuracy_matrix", []), "'accuracy_matrix' is not a non-empty table"),
    (lambda m: m["accuracy_matrix"][-1].__setitem__(0, None), "'accuracy_matrix' is not a non-empty table"),  # null below the diagonal
    (lambda m: m.pop("accuracy_matrix"), "lacks accuracy_matrix"),
])
def test_report_and_compare_on_a_malformed_metrics_file(ncm_run, tmp_path, capsys, change, words):
    run = tmp_path / "ncm-seed0"
    run.mkdir()
    (run / "config.json").write_text((ncm_run / "config.json").read_text())
    metrics = json.loads((ncm_run / "metrics.json").read_text())
    change(metrics)
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2
    one_line_error(capsys, words)
    if words.startswith("lacks"):  # the comparison's table does not need the matrix
        return
    assert main(["compare", "--strategies", "ncm", "--out", str(tmp_path), "--seeds", "0", "--set", "scenario.n_experiences=2"]) == 2
    one_line_error(capsys, words)


@pytest.mark.parametrize("tamper,words", [
    (lambda r: r["state"].__setitem__(next(k for k in r["state"] if r["state"][k].dim() == 2), torch.zeros(5, 3)), "has shape [5, 3]"),
    (lambda r: r.pop("input_shape"), "lacks 'input_shape'"),
])
def test_adapt_weights_only_validates_the_learner_file_before_writing(tmp_path, capsys, tamper, words):
    run = tmp_path / "run"
    assert main(["run", "--strategy", "sffa", "--out", str(run), "--quiet", "--set", "strategy.hidden=[32]",
                 "--set", "strategy.learner_args.k=4", "--set", "scenario.epochs=1", *FAST]) == 0
    capsys.readouterr()
    record = torch.load(run / "learner.pt", weights_only=True)
    tamper(record)
    torch.save(record, run / "learner.pt")
    np.savez(tmp_path / "new.npz", x=load_dataset("digits").x_train[:40].numpy(), y=np.repeat([0, 1], 20))
    out = tmp_path / "adapted"
    assert main(["adapt", str(run), "--weights-only", "--data", f"npz:{tmp_path / 'new.npz'}", "--out", str(out)]) == 2
    one_line_error(capsys, words)
    assert not out.exists()


def test_extension_that_exits_while_loading_is_named(tmp_path, monkeypatch):
    import importlib.metadata

    from ffcl.strategies import registry

    (tmp_path / "exits_ext.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded_extensions", set())
    eps = [importlib.metadata.EntryPoint(name="quitter", value="exits_ext", group="ffcl.extensions")]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "ffcl.extensions" else [])
    with pytest.raises(ConfigError, match="the ffcl extension 'quitter' .* failed to load: SystemExit: 3"):
        registry.load_extensions()


def _full_disk(monkeypatch, target, name):
    original = getattr(target, name)

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(target, name, fail)
    return original


def test_full_disk_in_report_and_compare_gives_their_own_advice(ncm_run, tmp_path, capsys, monkeypatch):
    import csv

    import matplotlib.figure

    grid = ncm_run.parent
    _full_disk(monkeypatch, csv.DictWriter, "writerow")
    assert main(["compare", "--strategies", "ncm", "--out", str(grid), "--seeds", "0", "--set", "scenario.n_experiences=2"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "ffcl run --resume" not in err and "run the same `ffcl compare` again" in err
    assert not (grid / "comparison.csv").exists()
    monkeypatch.undo()
    _full_disk(monkeypatch, matplotlib.figure.Figure, "savefig")
    assert main(["report", str(ncm_run), "--out", str(tmp_path / "rep")]) == 2
    line = one_line_error(capsys, "No space left on device", "run `ffcl report` again")
    assert "--resume" not in line


def test_write_comparison_is_whole_or_absent(tmp_path, monkeypatch):
    import csv

    _full_disk(monkeypatch, csv.DictWriter, "writerow")
    with pytest.raises(Exception, match="No space left on device"):
        write_comparison([{"strategy": "a", "scenario": "s", "seeds": [0], **{k: None for key, _, _ in COLUMNS for k in (key, key + "_std")}}], tmp_path)
    assert not (tmp_path / "comparison.csv").exists() and not list(tmp_path.glob("*.tmp"))


def test_a_text_file_named_npz_is_not_an_npz(tmp_path):
    (tmp_path / "notes.npz").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="is not an npz file"):
        load_dataset(f"npz:{tmp_path / 'notes.npz'}")


def test_dry_run_writes_no_image_folder_cache(tmp_path, capsys):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((4, 4), 20 * i + (100 if cls == "dog" else 0), np.uint8)).save(tmp_path / "images" / cls / f"{i}.png")
    root = tmp_path / "root"
    root.mkdir()
    assert main(["run", "--strategy", "ncm", "--dry-run", "--data-root", str(root), "--set",
                 f"scenario.dataset='folder:{tmp_path / 'images'}'", "--set", "scenario.n_experiences=1"]) == 0
    assert "nothing trained or written" in capsys.readouterr().out
    assert list(root.iterdir()) == []


def test_learner_file_never_left_half_written_by_a_failed_save(tmp_path, monkeypatch):
    from ffcl import files

    learner = StreamLearner("slda")
    d = load_dataset("digits")
    learner.partial_fit(d.x_train[:40].numpy(), d.y_train[:40].numpy())
    (tmp_path / "l.pt.tmp").symlink_to(tmp_path / "precious")  # a link where the old temporary name was: untouched
    (tmp_path / "precious").write_text("mine")
    _full_disk(monkeypatch, files.os, "replace")
    with pytest.raises(files.WriteError, match="No space left"):
        learner.save(tmp_path / "l.pt")
    assert (tmp_path / "precious").read_text() == "mine" and (tmp_path / "l.pt.tmp").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.pt.tmp", "precious"]
