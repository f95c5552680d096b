"""``StreamLearner``: any strategy recipe as a scikit-learn estimator that learns batch by batch.

For people who adapt a model on live data inside their own loop or a scikit-learn pipeline::

    learner = StreamLearner("sffa", hidden=[1400, 1400])
    for X, y in source:                  # numpy arrays or tensors; any hashable labels
        learner.partial_fit(X, y)        # predicted first (prequential accuracy), then learnt
    learner.prequential_accuracy_, learner.predict(X_new), learner.save("learner.pt")

Each ``partial_fit`` is one Avalanche experience trained by the recipe's own strategy (its
template and plugins, e.g. replay or neuron allocation), so the updates are exactly those of
``ffcl run`` on an online stream with that batch size. Labels need not be known in advance: an
unseen label joins ``classes_`` and the network grows to hold it, as in ``ffcl adapt``.
Prequential (test-then-train) accuracy is measured on the fly (``ffcl.metrics.PrequentialAccuracy``).
``save``/``load`` use the weights-only learner file (``ffcl.learner_file``): loading runs no code.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from avalanche.training.plugins import EvaluationPlugin
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import ConfigError, load_strategy
from .data.iterable import as_batch, experience_of
from .learner_file import learner_record, load_record, save_learner, strategy_from_record
from .metrics import PrequentialAccuracy
from .metrics.anytime import eval_mode

__all__ = ["StreamLearner"]


class StreamLearner(ClassifierMixin, BaseEstimator):
    """A continual learner with scikit-learn's ``partial_fit`` / ``fit`` / ``predict`` API.

    :param recipe: a strategy recipe, by name (``ffcl recipes``) or path to a TOML file.
    :param hidden: layer widths, replacing the recipe's.
    :param lr: learning rate, replacing the recipe's.
    :param batch_size: training minibatch (a larger ``partial_fit`` batch is learnt in several).
    :param epochs: passes over each ``partial_fit`` batch (1: each sample is seen once).
    :param learner_args: the recipe's learner arguments to replace, e.g. ``{"k": 20}``.
    :param max_classes: label capacity to build for (default: the labels of the first batch);
        the network grows beyond it when needed, but neuron allocation divides its layers among
        this many classes, so reserve room when more classes will come.
    :param device: ``cpu``, ``cuda`` or ``auto``.
    :param seed: seeds torch's global generator when the learner is built (first ``partial_fit``).
    :param window: samples of the windowed prequential accuracy.
    """

    def __init__(self, recipe: str = "sffa", *, hidden: list[int] | None = None, lr: float | None = None,
                 batch_size: int = 32, epochs: int = 1, learner_args: dict[str, Any] | None = None,
                 max_classes: int | None = None, device: str = "cpu", seed: int = 0, window: int = 1000) -> None:
        self.recipe = recipe
        self.hidden = hidden
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.learner_args = learner_args
        self.max_classes = max_classes
        self.device = device
        self.seed = seed
        self.window = window

    # ------------------------------------------------------------------ learning

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> "StreamLearner":
        """Predict the batch (for prequential accuracy), then learn it as one experience.
        ``classes`` (optional, first call) lists labels to reserve room for."""
        if y is None:
            raise ValueError("StreamLearner requires y to be passed, but the target y is None")
        first = not hasattr(self, "strategy_")
        before = set(vars(self))
        try:  # everything checked before the learner changes: a refused call leaves it as it was
            X, y = self._validate(X, y, reset=first)
            kind = _label_kind(y, "y")
            if first:
                if classes is not None and _label_kind(np.asarray(classes), "classes") != kind:
                    raise ValueError(f"classes are {_label_kind(np.asarray(classes), 'classes')}s but y holds {kind}s: "
                                     "give labels of one type")
                self._build(X, y, classes)
            elif kind != _label_kind(self.classes_, "classes_"):
                raise ValueError(f"y holds {kind} labels, but this learner's classes are {_label_kind(self.classes_, 'classes_')}s "
                                 f"({', '.join(map(repr, self.classes_.tolist()[:3]))}, ...): give labels of the first batch's type")
            x = self._as_input(X)
        except BaseException:
            if first:
                for attr in set(vars(self)) - before:
                    delattr(self, attr)
            raise
        idx = self._encode(y)
        self.strategy_.train(experience_of(x, idx, self._n_batches))
        self._n_batches += 1
        return self

    def fit(self, X: Any, y: Any) -> "StreamLearner":
        """Forget everything, then learn ``X, y`` as one experience (``epochs`` passes)."""
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        return self.partial_fit(X, y)

    def learn_stream(self, batches: Iterable[tuple[Any, Any]], *, report_every: int = 0) -> "StreamLearner":
        """``partial_fit`` on each ``(X, y)`` batch of any iterable (a queue, a generator over a
        file or a sensor); with ``report_every``, print the prequential accuracy every that many samples."""
        next_report = report_every
        for X, y in batches:
            self.partial_fit(X, y)
            if report_every and self.prequential_.samples >= next_report:
                print(f"{self.prequential_.samples} samples | prequential accuracy {self.prequential_accuracy_:.4f} "
                      f"| last {self.window}: {self.prequential_.window_accuracy():.4f}", flush=True)
                next_report += report_every * math.ceil((self.prequential_.samples + 1 - next_report) / report_every)
        return self

    # ------------------------------------------------------------------ predicting

    def class_scores(self, X: Any) -> np.ndarray:
        """The learner's score of each class of ``classes_`` for each sample [N, n_classes]
        (logits, goodness or log-likelihoods, as the learner has them)."""
        check_is_fitted(self, "strategy_")
        X = self._validate(X, reset=False)
        x = self._as_input(X)
        model, size = self.strategy_.model, self.strategy_.eval_mb_size
        with eval_mode(model):
            scores = torch.cat([model(x[i : i + size].to(self.strategy_.device)).cpu() for i in range(0, len(x), size)])
        return scores[:, : len(self.classes_)].double().numpy()

    def predict(self, X: Any) -> np.ndarray:
        scores = self.class_scores(X)
        return self.classes_[scores.argmax(1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of :meth:`class_scores`: a ranking of the classes, not a calibrated probability."""
        scores = self.class_scores(X)
        scores = np.exp(scores - scores.max(1, keepdims=True))
        return scores / scores.sum(1, keepdims=True)

    @property
    def prequential_accuracy_(self) -> float | None:
        """Accuracy of every batch predicted before it was learnt, all samples so far."""
        return self.prequential_.result()

    # ------------------------------------------------------------------ files

    def save(self, path: str | Path) -> None:
        """Write the learner to ``path`` in the weights-only format (no code runs when it is read)."""
        check_is_fitted(self, "strategy_")
        save_learner(self.strategy_, path, [str(c) for c in self.classes_], extra=self._extra())

    @classmethod
    def load(cls, path: str | Path | io.BytesIO, device: str | None = None, feature_extractor: str | None = None) -> "StreamLearner":
        """A learner saved by :meth:`save`, optionally on another ``device``; executes no code. A file
        that is damaged or was edited (its classes, sizes or tensors disagree) is a one-line ConfigError.
        A learner on a TorchScript ``feature_extractor`` loads only if you name that file here."""
        record = load_record(path, feature_extractor=feature_extractor)
        try:
            return cls._from_record(record, device)
        except ConfigError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, RuntimeError, IndexError) as e:
            raise ConfigError(f"StreamLearner file {getattr(path, 'name', path)} cannot be restored ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); the file is damaged or was edited") from None

    def __getstate__(self) -> dict[str, Any]:  # pickle, joblib and copy go through the weights-only record
        state = {k: v for k, v in vars(self).items() if k not in ("strategy_", "prequential_")}
        if hasattr(self, "strategy_"):
            buf = io.BytesIO()
            torch.save(learner_record(self.strategy_, extra=self._extra()), buf)
            state["_record"] = buf.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        record = state.pop("_record", None)
        self.__dict__.update(state)
        if record is not None:
            self._restore(load_record(io.BytesIO(record), feature_extractor=(self.learner_args or {}).get("feature_extractor")), self.device)

    # ------------------------------------------------------------------ internals

    def _validate(self, X: Any, y: Any = None, reset: bool = True) -> Any:
        if torch.is_tensor(X):
            X = X.detach().cpu().numpy()
        if y is None:
            return validate_data(self, X, reset=reset, allow_nd=True, dtype=[np.float32, np.float64, np.uint8])
        if torch.is_tensor(y):
            y = y.detach().cpu().numpy()
        X, y = validate_data(self, X, y, reset=reset, allow_nd=True, dtype=[np.float32, np.float64, np.uint8])
        check_classification_targets(y)
        if not reset and tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}; this learner takes {self.input_shape_}")
        return X, y

    def _as_input(self, X: np.ndarray) -> torch.Tensor:
        if tuple(X.shape[1:]) != self.input_shape_:
            raise ValueError(f"X has samples of shape {tuple(X.shape[1:])}; this learner takes {self.input_shape_}")
        return as_batch(X)[0].reshape(len(X), *self.input_shape_)

    def _config(self) -> Any:
        cfg = load_strategy(self.recipe)
        if self.hidden is not None:
            cfg.hidden = list(self.hidden)
        if self.lr is not None:
            cfg.lr = float(self.lr)
        cfg.batch_size, cfg.epochs = int(self.batch_size), int(self.epochs)
        cfg.learner_args = {**cfg.learner_args, **(self.learner_args or {})}
        cfg.validate(f"StreamLearner({self.recipe!r})")
        if cfg.loggers:
            raise ConfigError(f"StreamLearner({self.recipe!r}): the recipe's loggers ({', '.join(cfg.loggers)}) need a run directory, "
                              "which a StreamLearner has none of: use a recipe without `loggers`, or `ffcl run --logger`")
        return cfg

    def _build(self, X: np.ndarray, y: np.ndarray, classes: Any) -> None:
        from .experiment import resolve_device
        from .strategies import build_strategy

        if self.window < 1:
            raise ConfigError(f"window must be >= 1, got {self.window}")
        labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        if self.max_classes is not None and (not isinstance(self.max_classes, (int, np.integer)) or self.max_classes < 1):
            raise ValueError(f"max_classes must be a positive integer or None, got {self.max_classes!r}")
        input_shape = tuple(int(d) for d in X.shape[1:])
        capacity = max(len(labels), self.max_classes or 0)
        config = self._config()
        _check_memory(config, input_shape, capacity, f"StreamLearner({self.recipe!r}, max_classes={self.max_classes})")
        torch.manual_seed(self.seed)
        self.prequential_ = PrequentialAccuracy(self.window, every=10**12)  # values read from the metric, not logged
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Avalanche warns that an evaluator without loggers logs nothing
            try:
                strategy = build_strategy(config, input_shape=input_shape, num_classes=capacity,
                                          device=resolve_device(self.device), evaluator=self._evaluator())
            except (MemoryError, RuntimeError) as e:
                if not isinstance(e, MemoryError) and "alloc" not in str(e):
                    raise
                raise ValueError(f"StreamLearner({self.recipe!r}): not enough memory for a model of {capacity} classes "
                                 f"on inputs of shape {input_shape}; lower max_classes") from None
        self.classes_, self.input_shape_, self.strategy_ = labels, input_shape, strategy
        self._n_batches = 0

    def _evaluator(self) -> EvaluationPlugin:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return EvaluationPlugin(self.prequential_, loggers=[])

    def _encode(self, y: np.ndarray) -> torch.Tensor:
        """Labels as indices into ``classes_``; unseen labels join it, and the network grows."""
        known = set(self.classes_.tolist())
        new = [c for c in np.unique(y).tolist() if c not in known]
        if new:
            self.classes_ = np.asarray(self.classes_.tolist() + new)
            model = self.strategy_.model
            if len(self.classes_) > getattr(model, "max_classes", len(self.classes_)):
                model.grow(len(self.classes_))
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        return torch.tensor([lookup[c] for c in y.tolist()], dtype=torch.long)

    def _extra(self) -> dict[str, Any]:
        params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()}
        return {"stream_learner": {"params": params, "classes": self.classes_.tolist(), "input_shape": list(self.input_shape_),
                                   "n_batches": self._n_batches, "prequential": [self.prequential_.correct, self.prequential_.samples]}}

    def _restore(self, record: dict[str, Any], device: str | None) -> None:
        meta = record["extra"]["stream_learner"]
        self.classes_ = np.asarray(meta["classes"])
        self.input_shape_ = tuple(meta["input_shape"])
        self.n_features_in_ = self.input_shape_[0]
        self._n_batches = meta["n_batches"]
        self.prequential_ = PrequentialAccuracy(self.window, every=10**12)
        self.prequential_.correct, self.prequential_.samples = meta["prequential"]
        from .experiment import resolve_device

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.strategy_ = strategy_from_record(record, resolve_device(device or self.device), evaluator=self._evaluator())

    @classmethod
    def _from_record(cls, record: dict[str, Any], device: str | None) -> "StreamLearner":
        meta = record.get("extra", {}).get("stream_learner")
        if meta is None:
            raise ConfigError("this learner file was not written by StreamLearner.save (use ffcl.learner_file.read_learner)")
        _check_meta(meta, record)
        try:
            learner = cls(**meta["params"])
        except TypeError as e:
            raise ConfigError(f"StreamLearner file: its parameters do not fit StreamLearner ({e}); the file is damaged or was edited") from None
        if device is not None:
            learner.device = device
        learner._restore(record, device)
        model = learner.strategy_.model
        capacity = max(len(learner.classes_), meta["params"].get("max_classes") or 0)
        if hasattr(model, "max_classes") and model.max_classes != capacity:
            raise ConfigError(f"StreamLearner file: {len(learner.classes_)} classes, but its weights hold {model.max_classes}; "
                              "the file is damaged or was edited")
        return learner


def _label_kind(labels: np.ndarray, what: str) -> str:
    """``"number"`` or ``"string"``: the type of every label (scikit-learn refuses a mix of the two)."""
    if labels.dtype.kind in "biuf":
        return "number"
    if labels.dtype.kind in "US":
        return "string"
    kinds = {"string" if isinstance(v, str) else "number" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else type(v).__name__
             for v in labels.ravel().tolist()}
    if len(kinds) != 1 or not kinds <= {"string", "number"}:
        raise ValueError(f"{what} mixes label types ({', '.join(sorted(kinds))}): give labels of one type, numbers or strings")
    return kinds.pop()


def _check_meta(meta: Any, record: dict[str, Any]) -> None:
    """A one-line ConfigError unless a StreamLearner file's own fields are whole and agree with its weights."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"StreamLearner file: {why}; the file is damaged or was edited")

    fields = {"params": dict, "classes": list, "input_shape": list, "n_batches": int, "prequential": list}
    if not isinstance(meta, dict):
        raise bad("its StreamLearner fields are not a dict")
    for key, kind in fields.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise bad(f"{key!r} is missing or not a {kind.__name__}")
    classes = meta["classes"]
    try:
        _label_kind(np.asarray(classes, dtype=object), "its classes")
    except ValueError as e:
        raise bad(str(e).split(":")[0]) from None
    if not classes or len({repr(c) for c in classes}) != len(classes) or len(set(classes)) != len(classes):
        raise bad("its classes are empty or repeated")
    if record.get("class_names") is not None and record["class_names"] != [str(c) for c in classes]:
        raise bad("its classes differ from the class names saved with its weights")
    if len(classes) > record["num_classes"]:
        raise bad(f"{len(classes)} classes, but its weights hold {record['num_classes']}")
    if meta["input_shape"] != list(record["input_shape"]):
        raise bad(f"input_shape {meta['input_shape']} differs from its weights' {record['input_shape']}")
    p = meta["prequential"]
    if len(p) != 2 or not all(isinstance(v, int) for v in p) or not 0 <= p[0] <= p[1] or meta["n_batches"] < 0:
        raise bad("its counters are not counts")


def _free_memory() -> int | None:
    """Bytes this process may still allocate: the machine's available memory, or what is left
    under its address-space limit (``ulimit -v``) if that is lower; None if unknown."""
    import resource

    free = []
    try:
        with open("/proc/meminfo") as f:
            free += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            free.append(limit - used)
    except (OSError, ValueError):
        pass
    return min(free) if free else None


def _check_memory(config: Any, input_shape: tuple[int, ...], capacity: int, what: str) -> None:
    """A one-line ValueError if the model ``config`` builds for ``capacity`` classes would not fit
    in memory: its size is read off the model built on PyTorch's ``meta`` device (no memory)."""
    from .strategies import build_strategy

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = build_strategy(config, input_shape=input_shape, num_classes=capacity, device=torch.device("meta")).model
    except ConfigError:
        raise
    except Exception:  # noqa: BLE001 - a learner that reads values while it is built: the allocation itself is guarded
        return
    need = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    free = _free_memory()
    if free is not None and need > free:
        raise ValueError(f"{what}: the model for {capacity} classes needs {need / 2**30:.1f} GiB, "
                         f"more than the {max(free, 0) / 2**30:.1f} GiB free; lower max_classes")
