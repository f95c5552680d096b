"""The three types of incremental learning (van de Ven et al., NMI 2022): task- and domain-incremental
streams, permuted streams, the masked and multi-head task-IL outputs, and every learner in each kind."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from avalanche.benchmarks.scenarios.deprecated.generators import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.models import MultiTaskModule
from avalanche.training.plugins import EvaluationPlugin, LwFPlugin
from torch.utils.data import TensorDataset

from ffcl.config import ConfigError, StrategyConfig, load_strategy
from ffcl.data import DataError, load_dataset, make_stream
from ffcl.data.loaders import dataset_tensors
from ffcl.data.streams import permuted
from ffcl.experiment import RunError, run_experiment
from ffcl.metrics import MatrixSummary
from ffcl.metrics.summary import accuracy_row
from ffcl.nn.ff import NEG
from ffcl.strategies import build_strategy
from ffcl.strategies.ff_template import sample_negatives
from ffcl.strategies.heads import MultiHeadNet, TaskAwareLwF, TaskMask, task_mask_of

from conftest import build_run_config


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def small(**kwargs) -> StrategyConfig:
    return StrategyConfig(**{"hidden": [32], "epochs": 1, "batch_size": 32, "lr": 1e-2, **kwargs})


def _test_tensors(stream):
    return [dataset_tensors(e.dataset) for e in stream.test_stream]


# --------------------------------------------------------------------------- streams


def test_task_incremental_stream_gives_every_sample_its_tasks_label(digits):
    s = make_stream(digits, 5, kind="task_incremental")
    assert s.task_labels and s.num_classes == 10 and s.classes_per_experience[2] == [4, 5]
    for i, (train, test) in enumerate(zip(s.train_stream, s.test_stream)):
        for exp in (train, test):
            x, y, t = dataset_tensors(exp.dataset)
            assert exp.task_label == i and (t == i).all()
            assert sorted(y.unique().tolist()) == [2 * i, 2 * i + 1]


def test_domain_incremental_stream_relabels_classes_by_position(digits):
    ci = make_stream(digits, 5, class_order=[3, 8, 1, 6, 0, 9, 2, 7, 4, 5])
    di = make_stream(digits, 5, class_order=[3, 8, 1, 6, 0, 9, 2, 7, 4, 5], kind="domain_incremental")
    assert not di.task_labels and di.num_classes == 2 and di.class_names == ("3|1|0|2|4", "8|6|9|7|5")
    assert di.classes_per_experience == [[0, 1]] * 5
    for c_exp, d_exp in zip(ci.test_stream, di.test_stream):
        xc, yc, _ = dataset_tensors(c_exp.dataset)
        xd, yd, td = dataset_tensors(d_exp.dataset)
        first = {3: 0, 8: 1, 1: 0, 6: 1, 0: 0, 9: 1, 2: 0, 7: 1, 4: 0, 5: 1}  # position of each class in its pair
        assert torch.equal(xc, xd) and yd.tolist() == [first[int(c)] for c in yc] and (td == 0).all()


def test_domain_incremental_needs_equal_experiences(digits):
    with pytest.raises(DataError, match="as many classes"):
        make_stream(digits, 3, kind="domain_incremental")  # 3 + 3 + 4 classes


def test_permuted_data_is_the_data_under_fixed_pixel_permutations(digits):
    p = permuted(digits, 3, seed=4)
    n = len(digits.y_train)
    assert p.num_classes == 30 and p.class_names[:2] == ("0", "1") and p.class_names[10] == "0@perm1"
    assert torch.equal(p.x_train[:n], digits.x_train) and torch.equal(p.y_train[n : 2 * n], digits.y_train + 10)
    flat, orig = p.x_train[n : 2 * n].flatten(1), digits.x_train.flatten(1)
    assert not torch.equal(flat, orig) and torch.equal(flat.sort(1).values, orig.sort(1).values)  # the same pixels, moved
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(4))  # the first drawn permutation
    assert torch.equal(flat, orig[:, perm])
    assert torch.equal(permuted(digits, 3, seed=4).x_test, p.x_test) and not torch.equal(permuted(digits, 3, seed=5).x_test, p.x_test)


@pytest.mark.parametrize("kind,classes", [("class_incremental", 30), ("task_incremental", 30), ("domain_incremental", 10)])
def test_a_permuted_stream_in_each_kind(digits, kind, classes):
    s = make_stream(permuted(digits, 3), 3, kind=kind)
    assert s.num_classes == classes and s.n_experiences == 3
    _, y, t = dataset_tensors(s.test_stream[2].dataset)
    assert len(y) == len(digits.y_test)
    assert sorted(y.unique().tolist()) == (list(range(10)) if kind == "domain_incremental" else list(range(20, 30)))
    assert (t == (2 if kind == "task_incremental" else 0)).all()
    if kind == "domain_incremental":
        assert s.class_names == digits.class_names


def test_scenario_keys_are_checked():
    with pytest.raises(ConfigError, match="permuted"):
        build_run_config(overrides=["scenario.permuted=true", "scenario.kind=\"joint\""])
    with pytest.raises(ConfigError, match="class_order"):
        build_run_config(overrides=["scenario.permuted=true", "scenario.class_order=[0,1,2,3,4,5,6,7,8,9]"])
    with pytest.raises(ConfigError, match="needs task labels"):
        build_run_config(overrides=["strategy.head=\"multi\""])
    with pytest.raises(ConfigError, match="'head' must be one of"):
        build_run_config(overrides=["strategy.head=\"shared\""])


# --------------------------------------------------------------------------- task-incremental outputs


def test_task_mask_hides_every_class_outside_the_samples_task():
    mask = TaskMask()
    mask.register(0, [0, 1])
    mask.register(1, [2, 3])
    mask.register(1, [4])
    out = mask.mask(torch.zeros(3, 6), torch.tensor([0, 1, 1]))
    assert (out[0, :2] == 0).all() and (out[0, 2:] == NEG).all()
    assert (out[1:, 2:5] == 0).all() and (out[1:, [0, 1, 5]] == NEG).all()
    assert mask.min_classes == 2
    with pytest.raises(ConfigError, match="task labels"):
        mask.register(-1, [0])


def test_negatives_come_from_the_samples_task_only():
    torch.manual_seed(0)
    y = torch.tensor([0, 1, 4, 5, 4])
    classes = torch.arange(6)
    allowed = torch.zeros(5, 6, dtype=torch.bool)
    allowed[:2, :2] = True  # task 0: classes 0, 1
    allowed[2:, 2:] = True  # task 1: classes 2..5
    for mode, scores in (("random", None), ("hardest", torch.randn(5, 6)), ("all", None)):
        for _ in range(20):
            negs = sample_negatives(y, classes, 1, mode, scores, allowed)
            assert negs.shape == (5, 1) and (negs != y[:, None]).all()
            assert allowed.gather(1, negs).all()
    hardest = sample_negatives(y, classes, 1, "hardest", torch.arange(6.0).expand(5, 6), allowed)
    assert hardest.flatten().tolist() == [1, 0, 5, 4, 5]


@pytest.mark.parametrize("recipe", ["sffa", "df", "sffa_replay"])
def test_ff_learners_in_task_il_contrast_labels_of_the_samples_task_only(digits, recipe):
    """Training negatives come from each sample's own task, also for replayed samples of old tasks."""
    stream = make_stream(digits, 3, kind="task_incremental")
    cfg = load_strategy(recipe)
    cfg.hidden, cfg.epochs = [64, 64], 1
    strategy = build_strategy(cfg, input_shape=stream.input_shape, num_classes=10, task_incremental=True)
    assert isinstance(strategy.plugins[0], TaskMask)
    tasks = {0: {0, 1, 2}, 1: {3, 4, 5}, 2: {6, 7, 8, 9}}
    seen = []
    original = strategy.criterion

    def spy():
        if strategy.is_training:
            seen.append((strategy.mb_task_id.clone(), strategy._labels.clone()))
        return original()

    strategy.criterion = spy
    for exp in stream.train_stream:
        strategy.train(exp)
    assert seen and any(len(t.unique()) > 1 for t, _ in seen) == (recipe == "sffa_replay")
    for t, labels in seen:
        for task, row in zip(t.tolist(), labels.tolist()):
            assert set(row) <= tasks[task]


@pytest.mark.parametrize("recipe", ["naive", "sffa", "slda", "replay_free", "genclass"])
def test_task_il_predictions_stay_in_the_task(digits, recipe, tmp_path):
    """Every learner in a task-incremental run predicts one of the task's classes, and the run's
    accuracy matrix is the accuracy of those masked predictions (genclass draws its importance
    samples afresh at each evaluation, so only its predictions' range is compared)."""
    cfg = build_run_config("split_digits", recipe, ["scenario.kind=\"task_incremental\"", "scenario.epochs=1",
                                                   "scenario.n_experiences=2"] + ([] if recipe == "replay_free" else ["strategy.hidden=[32]"]))
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    from ffcl.experiment import load_learner

    strategy = load_learner(tmp_path / "run")
    stream = make_stream(digits, 2, kind="task_incremental")
    mask = task_mask_of(strategy)
    assert mask is not None
    row = []
    strategy.model.eval()
    with torch.no_grad():
        for i, (x, y, t) in enumerate(_test_tensors(stream)):
            pred = mask.mask(strategy.model(x), t).argmax(1)
            assert set(pred.unique().tolist()) <= set(stream.classes_per_experience[i])
            row.append((pred == y).float().mean().item())
    if recipe != "genclass":
        assert m["accuracy_matrix"][-1] == pytest.approx(row)


def test_task_il_lifts_a_learner_above_its_class_il_accuracy(digits, tmp_path):
    """The same learner, seed and data: telling it the task can only narrow its choices."""
    accs = {}
    for kind in ("class_incremental", "task_incremental"):
        cfg = build_run_config("split_digits", "naive", [f"scenario.kind=\"{kind}\"", "scenario.epochs=1"])
        accs[kind] = run_experiment(cfg, tmp_path / kind, quiet=True)["final_average_accuracy"]
    assert accs["task_incremental"] > accs["class_incremental"] + 0.3


def test_multi_head_bp_learner_has_a_head_per_task(digits, tmp_path):
    cfg = build_run_config("split_digits", "ewc", ["scenario.kind=\"task_incremental\"", "strategy.lr=0.01",
                                                  "strategy.head=\"multi\"", "scenario.n_experiences=3"])
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    from ffcl.experiment import load_learner

    model = load_learner(tmp_path / "run").model
    assert isinstance(model, MultiHeadNet) and isinstance(model, MultiTaskModule)
    assert sorted(model.classifier.classifiers.keys()) == ["0", "1", "2"]
    assert m["final_average_accuracy"] > 0.8 and len(m["accuracy_matrix"]) == 3


def test_multi_head_is_refused_where_it_cannot_act():
    with pytest.raises(ConfigError, match="masked head"):
        build_strategy(small(learner="sffa", head="multi"), input_shape=(1, 8, 8), num_classes=10, task_incremental=True)
    with pytest.raises(ConfigError, match="needs task labels"):
        build_strategy(small(head="multi"), input_shape=(1, 8, 8), num_classes=10)


def test_lwf_with_a_masked_head_distils_every_old_task(digits):
    """Avalanche's single-head LwF would read the masked outputs (old tasks at NEG: no gradient) and
    distil task 0 only; ffcl's distils each old task's classes from the unmasked outputs."""
    stream = make_stream(digits, 3, kind="task_incremental")
    strategy = build_strategy(small(plugins={"lwf": {"alpha": 1.0}}), input_shape=stream.input_shape, num_classes=10,
                              task_incremental=True)
    lwf = next(p for p in strategy.plugins if isinstance(p, LwFPlugin))
    assert isinstance(lwf, TaskAwareLwF)
    for exp in stream.train_stream[:2]:
        strategy.train(exp)
    x, y, t = dataset_tensors(stream.train_stream[2].dataset)
    x = x[:64]
    model = strategy.model
    masked = TaskMask()
    masked.register(2, [6, 7, 8, 9])
    out = masked.mask(model(x), torch.full((64,), 2))
    assert set(lwf.lwf.prev_classes_by_task) == {0, 1}
    penalty = lwf.lwf._lwf_penalty(out, x, model)
    model.zero_grad()
    penalty.backward()
    rows = model.classifier.weight.grad.abs().sum(1)
    assert penalty.item() > 0 and (rows[:4] > 0).all()  # both old tasks' outputs are pulled towards the old model


def test_accuracy_row_reads_task_labelled_metric_names():
    results = {"Top1_Acc_Exp/eval_phase/test_stream/Task001/Exp001": 0.5, "Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000": 0.25,
               "Top1_Acc_Stream/eval_phase/test_stream/Task001": 0.4}
    assert accuracy_row(results, 2) == [0.25, 0.5]
    assert accuracy_row({"Top1_Acc_Exp/eval_phase/test_stream/Exp000": 1.0}, 1) == [1.0]


# --------------------------------------------------------------------------- a user's own Avalanche script


@pytest.mark.parametrize("recipe", ["sffa", "replay"])
def test_a_users_task_labelled_nc_benchmark_reads_the_same_per_task_accuracy(digits, recipe):
    bench = nc_benchmark(TensorDataset(digits.x_train, digits.y_train), TensorDataset(digits.x_test, digits.y_test),
                         n_experiences=2, task_labels=True, fixed_class_order=list(range(10)),
                         class_ids_from_zero_in_each_exp=False)
    summary = MatrixSummary(2)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), summary, loggers=[])
    cfg = load_strategy(recipe)
    cfg.hidden, cfg.epochs = [64, 64], 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy = build_strategy(cfg, input_shape=(1, 8, 8), num_classes=10, evaluator=evaluator, task_incremental=True)
        for exp in bench.train_stream:
            strategy.train(exp)
            results = strategy.eval(bench.test_stream)
    mask = task_mask_of(strategy)
    direct = []
    strategy.model.eval()
    with torch.no_grad():
        for exp in bench.test_stream:
            x, y, t = dataset_tensors(exp.dataset)
            direct.append((mask.mask(strategy.model(x), t).argmax(1) == y).float().mean().item())
    names = [f"Top1_Acc_Exp/eval_phase/test_stream/Task{i:03d}/Exp{i:03d}" for i in range(2)]
    assert [results[n] for n in names] == pytest.approx(direct)
    assert summary.rows[-1] == pytest.approx(direct) and min(direct) > 0.4  # chance in a 5-class task: 0.2


# --------------------------------------------------------------------------- allocation and adapt


def test_allocation_in_domain_il_keeps_each_label_on_the_neurons_of_its_first_experience(digits, tmp_path):
    """In domain-IL a label recurs in every experience: it owns one block of neurons throughout, and
    with freeze = true that block stops learning after the label's first experience, so what was
    learnt there is never forgotten and nothing new is learnt (a warning says so)."""
    cfg = build_run_config("split_digits", "sffa_alloc", ["scenario.kind=\"domain_incremental\"", "scenario.epochs=1",
                                                         "strategy.hidden=[64, 64]"])
    with pytest.warns(UserWarning, match="frozen"):
        m = run_experiment(cfg, tmp_path / "run", quiet=True)
    a = m["accuracy_matrix"]
    assert all(row[0] == pytest.approx(a[0][0]) for row in a)  # experience 0: never forgotten
    assert [sorted(b["neurons_per_class"]) for b in m["allocation"]] == [[0, 1], [0, 1]]


def test_adapt_refuses_task_and_domain_runs(tmp_path):
    from ffcl.adapt import adapt_run

    cfg = build_run_config("split_digits", "ncm", ["scenario.kind=\"domain_incremental\"", "scenario.epochs=1"])
    run_experiment(cfg, tmp_path / "run", quiet=True)
    with pytest.raises(RunError, match="domain_incremental run"):
        adapt_run(tmp_path / "run", "digits", tmp_path / "adapted")
    assert not (tmp_path / "adapted").exists()


def test_run_directory_records_the_kind_and_class_names(tmp_path):
    from ffcl.cli import main

    cfg = build_run_config("split_digits", "ncm", ["scenario.kind=\"domain_incremental\""])
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["scenario"]["kind"] == "domain_incremental"
    assert m["kind"] == "domain_incremental"
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "report" / "report.md").read_text().startswith("# Report: split_digits (domain_incremental)")
    from ffcl.experiment import load_learner

    assert load_learner(tmp_path / "run", weights_only=True).ffcl_class_names == ("0|2|4|6|8", "1|3|5|7|9")


def test_the_comparison_table_of_task_incremental_runs(tmp_path):
    """What `ffcl compare` prints for a task-IL grid: its summary of the runs' metrics (the grid
    runner itself is tested in test_compare.py)."""
    from ffcl.compare import format_markdown, summarize_runs

    dirs = []
    for name in ("naive", "ncm"):
        cfg = build_run_config("split_digits", name, ["scenario.kind=\"task_incremental\"", "strategy.lr=0.01"])
        run_experiment(cfg, tmp_path / name, quiet=True)
        dirs.append(tmp_path / name)
    table = format_markdown(summarize_runs(dirs))
    for d in dirs:
        m = json.loads((d / "metrics.json").read_text())
        assert f"| {d.name} | 0 | {100 * m['final_average_accuracy']:.2f}" in table and m["final_average_accuracy"] > 0.8


def test_online_task_incremental_run_with_mini_experiences(tmp_path):
    """Online mini-experiences carry no task_labels attribute: the task mask reads their samples."""
    cfg = build_run_config("online_split_digits", "sffa", ["scenario.kind=\"task_incremental\"", "scenario.online_experience_size=100",
                                                          "strategy.hidden=[64, 64]", "scenario.n_experiences=2"])
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert len(m["accuracy_matrix"]) == 2 and m["final_average_accuracy"] > 0.4  # chance in a 5-class task: 0.2


def test_permuted_domain_incremental_run(tmp_path):
    cfg = build_run_config("split_digits", "ncm", ["scenario.permuted=true", "scenario.kind=\"domain_incremental\"",
                                                  "scenario.n_experiences=3"])
    m = run_experiment(cfg, tmp_path / "run", quiet=True)
    assert m["classes_per_experience"] == [list(range(10))] * 3 and len(m["accuracy_matrix"]) == 3
    assert m["accuracy_matrix"][0][0] > 0.8  # the identity permutation, learnt alone


@pytest.mark.parametrize("plugin", ["si", "lwf", "mas", "lfl", "gem", "replay"])
@pytest.mark.parametrize("head", ["masked", "multi"])
def test_bp_plugins_run_with_either_task_il_head(digits, plugin, head):
    torch.manual_seed(0)
    stream = make_stream(digits, 2, kind="task_incremental")
    cfg = small(head=head, epochs=3, plugins={plugin: {"patterns_per_experience": 32} if plugin == "gem" else {}})
    strategy = build_strategy(cfg, input_shape=stream.input_shape, num_classes=10, task_incremental=True,
                              evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
    for exp in stream.train_stream:
        strategy.train(exp)
    row = accuracy_row(strategy.eval(stream.test_stream), 2)
    assert min(row) > 0.5  # chance in a 5-class task: 0.2


ONE_RECIPE_PER_LEARNER = ["naive", "cumulative", "joint", "der", "ff", "sffa", "df", "df_proto", "trifecta", "dc", "sff",
                          "replay_free", "slda", "ncm", "genclass", "sffa_alloc"]


@pytest.mark.parametrize("kind", ["task_incremental", "domain_incremental"])
@pytest.mark.parametrize("recipe", ONE_RECIPE_PER_LEARNER)
def test_every_learner_runs_in_task_and_domain_incremental_streams(digits, recipe, kind):
    """Each registered learner trains and evaluates in both new kinds (dgr takes 28x28 images only:
    its kinds are the same code path as naive's)."""
    stream = make_stream(digits, 2, kind=kind)
    cfg = load_strategy(recipe)
    if cfg.net != "mlp":
        cfg.epochs = 1  # the conv learners are slower per epoch
    elif recipe != "ff":  # ff's threshold suits its width
        cfg.hidden, cfg.epochs = [64 if recipe != "replay_free" else 256] * len(cfg.hidden), 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy = build_strategy(cfg, input_shape=stream.input_shape, num_classes=stream.num_classes, task_incremental=kind == "task_incremental",
                                  evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]))
        for exp in [stream.train_stream] if recipe == "joint" else stream.train_stream:
            strategy.train(exp)
        row = accuracy_row(strategy.eval(stream.test_stream), 2)
    assert all(0 <= a <= 1 for a in row) and max(row) > 0.3  # above chance somewhere (5 classes per task; 2 shared labels: 0.5)
