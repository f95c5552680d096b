"""No training step synchronises with the host (issue 16, item 4). On a GPU a step that reads a
value back (``.item()``, ``bool(t)``, ``nonzero``, a boolean mask, ``unique``) waits for every
queued kernel, so the loop cannot run ahead of the device. The ops that force that wait are the
same on any device, so a dispatch mode that records them checks the CUDA path on this CPU machine.
"""

from __future__ import annotations

import collections

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin
from torch.utils._python_dispatch import TorchDispatchMode

from ffcl.config import load_strategy
from ffcl.data import load_dataset, make_stream
from ffcl.metrics import PrequentialAccuracy
from ffcl.progress import ProgressPlugin
from ffcl.strategies import build_strategy
from ffcl.strategies.ff_template import sample_negatives

# ops whose result size or value the host must read before it can go on
SYNCING = {"nonzero", "_local_scalar_dense", "_unique", "_unique2", "unique_dim", "unique_consecutive",
           "masked_select", "is_nonzero", "equal", "bincount", "repeat_interleave"}


class _Record(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = func._schema.name.split("::")[1]
        if name in SYNCING:
            self.ops[name] += 1
        elif name.startswith("index") and len(args) > 1 and isinstance(args[1], (list, tuple)) \
                and any(t is not None and t.dtype == torch.bool for t in args[1]):
            self.ops[f"{name} with a boolean mask"] += 1
        return func(*args, **(kwargs or {}))


class HostSyncs(SupervisedPlugin):
    """Records the syncing ops run inside each training epoch (loader, forward, loss, backward,
    update and every plugin's per-iteration hooks); what happens once per epoch lies outside."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.iterations = self.samples = 0

    def before_training_epoch(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self._mode = _Record()
        self._mode.__enter__()

    def after_training_iteration(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self.iterations += 1
        self.samples += len(strategy.mb_y)

    def after_training_epoch(self, strategy, **kwargs):  # type: ignore[no-untyped-def]
        self._mode.__exit__(None, None, None)
        self.ops += self._mode.ops


def _train(recipe: str, evaluator=None, online: bool = False, extra=(), **learner_args) -> HostSyncs:  # type: ignore[no-untyped-def]
    digits = load_dataset("digits")
    stream = make_stream(digits, 5)
    cfg = load_strategy(recipe)
    cfg.hidden, cfg.epochs, cfg.batch_size = [64, 64], 1, 10 if online else 128
    cfg.learner_args.update(learner_args)
    syncs = HostSyncs()  # first, so its epoch spans the other plugins' per-iteration hooks
    strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, extra_plugins=[syncs, *extra], evaluator=evaluator)
    for exp in list(stream.train_stream)[:3]:
        strategy.train(exp)
    return syncs


@pytest.mark.parametrize("recipe", ["sffa", "sffa_alloc", "sffa_alloc_shift", "df", "ff", "ff_offline", "sffa_replay",
                                    "sffa_ewc", "naive", "replay", "ewc", "si", "lwf", "cumulative"])
def test_no_training_step_waits_for_the_host(recipe):
    syncs = _train(recipe)
    assert syncs.iterations >= 9
    assert not syncs.ops, f"{recipe}: syncing ops in the training loop: {dict(syncs.ops)}"


@pytest.mark.parametrize("recipe", ["sffa", "df", "ff"])
def test_a_candidate_cascade_scores_without_waiting_for_the_host(recipe):
    """The cascade keeps a fixed number of candidates per block (top-k, gather; no boolean mask)."""
    syncs = _train(recipe, cascade=[2])
    assert syncs.iterations >= 9
    assert not syncs.ops, f"{recipe} with a cascade: syncing ops in the training loop: {dict(syncs.ops)}"


@pytest.mark.parametrize("recipe", ["sffa", "df"])
def test_a_shortlist_scores_and_learns_its_class_means_without_waiting_for_the_host(recipe):
    """The shortlist ranks by a matrix product and keeps a fixed number (sort, gather); the class
    means are merged by index_add: no boolean mask, no item()."""
    syncs = _train(recipe, shortlist=3, cascade=[2])
    assert syncs.iterations >= 9
    assert not syncs.ops, f"{recipe} with a shortlist: syncing ops in the training loop: {dict(syncs.ops)}"


def test_prequential_accuracy_reads_its_hits_in_bulk():
    metric = PrequentialAccuracy(window=100, every=10**9)
    syncs = _train("sffa", EvaluationPlugin(metric), online=True)
    assert syncs.iterations > 50 and not syncs.ops
    assert metric.samples == syncs.samples
    assert 0 <= metric.result() <= 1  # read once, here


def test_the_progress_bar_reads_the_loss_only_when_it_redraws(monkeypatch):
    import functools

    import ffcl.progress

    monkeypatch.setattr(ffcl.progress, "tqdm", functools.partial(ffcl.progress.tqdm, mininterval=3600))
    syncs = _train("sffa", online=True, extra=[ProgressPlugin()])
    assert syncs.iterations > 50 and not syncs.ops


def test_the_recorder_sees_a_sync():
    with _Record() as rec:
        t = torch.tensor([1, 0, 2])
        t[t > 0].sum().item()
    assert rec.ops["_local_scalar_dense"] == 1 and sum(rec.ops.values()) == 2


@pytest.mark.parametrize("mode", ["random", "hardest", "all"])
def test_negatives_are_wrong_labels_among_the_candidates(mode):
    torch.manual_seed(0)
    classes = torch.tensor([1, 3, 4, 7, 9])
    y = classes[torch.randint(0, 5, (200,))]
    scores = torch.randn(200, 5)
    negs = sample_negatives(y, classes, 2, mode, scores)
    assert negs.shape == (200, 4 if mode == "all" else 2)
    assert torch.isin(negs, classes).all() and (negs != y[:, None]).all()
    assert (negs.sort(1).values.diff(1) > 0).all()  # distinct
    if mode == "hardest":  # the two highest-scoring wrong classes
        wrong = scores.masked_fill(classes[None] == y[:, None], -float("inf"))
        top = classes[wrong.topk(2, dim=1).indices]
        assert torch.equal(negs.sort(1).values, top.sort(1).values)
    if mode == "random":  # every wrong class is drawn, about equally often
        counts = torch.stack([(negs == c).sum() for c in classes])
        assert counts.min() > 0.6 * counts.float().mean()
