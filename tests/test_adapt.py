"""`ffcl adapt`: a finished run's learner continues on new data, old and new classes evaluated."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ffcl.adapt import adapt_run, relabel
from ffcl.cli import main
from ffcl.data import load_dataset
from ffcl.experiment import RunError, load_learner, run_experiment


def new_classes_npz(path, names=("flip0", "flip1")):
    """Upside-down 0s and 1s of the digits data set: two classes a digits run has never seen."""
    d = load_dataset("digits")
    x = torch.cat([d.x_train, d.x_test])
    y = torch.cat([d.y_train, d.y_test])
    keep = y < 2
    np.savez(path, x=x[keep].flip(-2).numpy(), y=y[keep].numpy(), class_names=np.array(names))
    return f"npz:{path}"


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory):
    from conftest import build_run_config

    run_dir = tmp_path_factory.mktemp("src") / "run"
    cfg = build_run_config("split_digits", "replay", ["strategy.hidden=[256]", "strategy.plugins.replay.mem_size=300"])
    run_experiment(cfg, run_dir, quiet=True)
    return run_dir


def test_relabel_matches_classes_by_name():
    d = load_dataset("synthetic", n_classes=3)
    renamed = type(d)(d.name, d.x_train, d.y_train, d.x_test, d.y_test, ("cat", "7", "dog"))
    data, mapping = relabel(renamed, tuple(str(i) for i in range(10)))
    assert mapping == {"cat": 10, "7": 7, "dog": 11}
    assert data.class_names[10:] == ("cat", "dog") and data.num_classes == 12
    assert torch.equal(data.y_train, torch.tensor([10, 7, 11])[d.y_train])


def test_adapt_learns_new_classes_and_keeps_old_ones(replay_run, tmp_path):
    out = tmp_path / "adapted"
    said: list[str] = []
    m = adapt_run(replay_run, new_classes_npz(tmp_path / "new.npz"), out, echo=said.append)
    assert m["new_classes"] == {"flip0": 10, "flip1": 11}
    rows = m["accuracy_matrix"]
    assert len(rows) == 2 and all(len(r) == 6 for r in rows)  # before + after; 5 old experiences + 1 new
    assert rows[0][5] == 0.0  # the learner had no output for the new classes before
    assert m["new_accuracy_after"] > 0.8  # learnt
    assert rows[0][:5] == json.loads((replay_run / "metrics.json").read_text())["accuracy_matrix"][-1]
    # the replay buffer came back with the learner: old classes kept (well above the 0% of no replay)
    # (fine-tuning without it ends at 0% on the old classes, as the SFFA test below shows)
    assert m["old_accuracy_after"] > 0.2
    assert m["average_forgetting"] == pytest.approx(m["old_accuracy_before"] - m["old_accuracy_after"])
    assert "old_forgetting" not in m  # one key for one number (docs/metrics.md)
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.json", "log.txt", "checkpoint.pt"}
    learner = load_learner(out)
    assert learner.model.classifier.out_features == 12  # the output layer grew for the new labels
    assert any("flip0" in s for s in said)


def test_adapt_an_sffa_run_grows_its_label_codes(tmp_path):
    from conftest import build_run_config

    src = tmp_path / "src"
    run_experiment(build_run_config("split_digits", "sffa", ["strategy.hidden=[40, 40]", "strategy.epochs=1",
                                                             "scenario.epochs=1", "scenario.n_experiences=2"]), src, quiet=True)
    codes = load_learner(src).model.codes.clone()
    m = adapt_run(src, new_classes_npz(tmp_path / "new.npz"), tmp_path / "out", epochs=3, quiet=True)
    before = json.loads((src / "metrics.json").read_text())["accuracy_matrix"][-1]
    assert m["accuracy_matrix"][0] == before + [0.0]  # growing changes no old score; new labels are not candidates yet
    model = load_learner(tmp_path / "out").model
    assert model.max_classes == 12 and torch.equal(model.codes[:10], codes)  # old classes keep their codes
    assert model.active[10:].all()
    assert m["new_accuracy_after"] > 0.6
    assert m["old_accuracy_after"] < 0.05  # no replay, no allocation: the old classes are overwritten


def test_adapt_refuses_bad_input_and_loses_nothing(replay_run, tmp_path):
    data = new_classes_npz(tmp_path / "new.npz")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="already exists"):
        adapt_run(replay_run, data, taken, quiet=True)
    assert (taken / "keep.txt").read_text() == "mine"
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(RunError, match="not a finished run"):
        adapt_run(unfinished, data, tmp_path / "x", quiet=True)
    np.savez(tmp_path / "big.npz", x=np.zeros((20, 3, 16, 16), np.float32), y=np.arange(20) % 2)
    with pytest.raises(Exception, match="resize"):
        adapt_run(replay_run, f"npz:{tmp_path / 'big.npz'}", tmp_path / "y", quiet=True)
    assert not (tmp_path / "y").exists()  # a failed start leaves nothing behind


def test_adapt_resumes_after_an_interruption(replay_run, tmp_path, monkeypatch):
    from conftest import interrupt_at

    data = new_classes_npz(tmp_path / "new.npz")
    full = adapt_run(replay_run, data, tmp_path / "full", n_experiences=2, quiet=True)
    with monkeypatch.context() as m:
        interrupt_at(m, 1)
        with pytest.raises(KeyboardInterrupt):
            adapt_run(replay_run, data, tmp_path / "cut", n_experiences=2, quiet=True)
    resumed = adapt_run(None, None, tmp_path / "cut", resume=True, quiet=True)
    assert resumed["accuracy_matrix"] == full["accuracy_matrix"]


def test_cli_adapt(replay_run, tmp_path, capsys):
    data = new_classes_npz(tmp_path / "new.npz")
    out = tmp_path / "cli"
    assert main(["adapt", str(replay_run), "--data", data, "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "new classes {'flip0': 10, 'flip1': 11}" in text and f"adaptation directory: {out}" in text
    assert main(["adapt", str(replay_run)]) == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_adapt_a_split_mnist_run_to_new_classes_from_an_npz(tmp_path):
    """End to end on real data: Split-MNIST with replay, then two new classes (letters-like
    patterns: MNIST digits 0 and 1 transposed) from a user .npz with class names."""
    from conftest import build_run_config

    from ffcl.data import DataError

    try:
        mnist = load_dataset("mnist")
    except DataError as exc:
        pytest.skip(f"MNIST is not on this machine: {exc}")
    src = tmp_path / "split_mnist"
    cfg = build_run_config("split_mnist", "replay", ["strategy.hidden=[128]", "scenario.epochs=1"])
    run_experiment(cfg, src, quiet=True)
    keep = mnist.y_test < 2  # the test images: unseen by the run as training data
    x = (mnist.x_test[keep, 0].transpose(1, 2) * 255).round().byte().numpy()
    np.savez(tmp_path / "new.npz", x=x, y=mnist.y_test[keep].numpy(), class_names=np.array(["T0", "T1"]))
    assert main(["adapt", str(src), "--data", f"npz:{tmp_path / 'new.npz'}", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["new_classes"] == {"T0": 10, "T1": 11}
    assert len(m["accuracy_matrix"][0]) == 6 and m["new_accuracy_after"] > 0.8
    assert m["old_accuracy_after"] > 0.5  # the restored replay buffer keeps the digits


def test_an_adaptation_can_be_adapted_again(replay_run, tmp_path):
    """Issue 14, item 14: the second adaptation's old experiences are the run's and the first
    adaptation's; it starts from the learner the first one left (its row 0 is their last row)."""
    first = adapt_run(replay_run, new_classes_npz(tmp_path / "a.npz"), tmp_path / "a", quiet=True)
    d = load_dataset("digits")
    keep = (d.y_train == 2) | (d.y_train == 3)
    np.savez(tmp_path / "b.npz", x=d.x_train[keep].transpose(-1, -2).numpy(), y=d.y_train[keep].numpy() - 2,
             class_names=np.array(["t2", "t3"]))
    second = adapt_run(tmp_path / "a", f"npz:{tmp_path / 'b.npz'}", tmp_path / "b", quiet=True)
    assert second["new_classes"] == {"t2": 12, "t3": 13}
    assert second["class_names"][10:] == ["flip0", "flip1", "t2", "t3"]
    assert len(second["columns"]) == 7 and second["classes_per_experience"][5:] == [[10, 11], [12, 13]]
    assert second["accuracy_matrix"][0][:6] == pytest.approx(first["accuracy_matrix"][-1])
    assert second["new_accuracy_after"] > 0.5
