"""scikit-learn estimators over the learning core (``LLFMModel``).

The API layer validates and converts; the arithmetic lives in the kernels.
``fit`` initialises (scaling statistics, k-means anchors) from the data it is
given and runs up to ``n_epochs`` passes, with early stopping as
scikit-learn's SGD and HistGradientBoosting estimators name it
(``early_stopping``, ``validation_fraction``, ``n_iter_no_change``): a seeded,
stratified for classifiers, share of the rows is set aside, evaluated after
every epoch (log loss, or RMSE for regression; ``training/early_stopping.py``),
and the best epoch's parameters are restored at the end. ``partial_fit``
runs one pass over the rows it is given, in order, initialising from its
first call's data; there, as in scikit-learn, stopping is the caller's
business. ``sample_weight`` weighs the loss, its curve and the validation.
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .estimator_params import FIT as _FIT, documented as _documented
from .estimator_store import ModelDirMixin
from .io.chunk import Chunk, sample_weights as _sample_weight
from .preprocess.moments import feature_stats
from .preprocess.standardize import SCALE_MODES, Standardizer
from .training.early_stopping import AUTO_MIN_ROWS, EarlyStopping, metric_for
from .inference.metrics import StreamingMetrics
from .models.capacity import AUTO
from .models.config import Config
from .models.init import initialise_model, resolve_anchors, stored_feature_rows
from .models.state import ModelState

_FM_PARAMS = ("rank", "optimizer", "eta0", "t0", "l2_w", "l2_v", "init_std")
_LLFM_PARAMS = _FM_PARAMS + ("method", "anchors", "n_neighbors", "beta", "rho", "n_candidates",
                             "rebuild_every", "eta_anchor", "anchor_epochs", "anchor_clip", "global_fm", "l2_local",
                             "jo_exact")


def _to_chunk(X, y=None) -> Chunk:
    yy = np.zeros(X.shape[0]) if y is None else y
    return Chunk.from_scipy(X, yy) if sp.issparse(X) else Chunk.from_dense(X, yy)


def _chunks(X, rows: int):
    for a in range(0, X.shape[0], rows):
        yield _to_chunk(X[a:a + rows])


class _Base(ModelDirMixin, BaseEstimator):
    """Shared fit / partial_fit / decision machinery; subclasses set the task."""

    _config_params = _FM_PARAMS
    _method = "fm"

    # -- set-up ---------------------------------------------------------------
    def _config(self, seed: int) -> Config:
        kw = {k: getattr(self, k) for k in self._config_params}
        kw.setdefault("method", self._method)
        if hasattr(self, "multiclass"):
            kw["multiclass"] = self.multiclass
        return Config(seed=seed, **kw).validate()

    def _initialise(self, X, y_enc, task: str, n_classes: int, epoch_rows: int | None = None) -> None:
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(2**31 - 1))
        config = self._config(seed)
        n, p = X.shape
        if self.scale not in SCALE_MODES:
            raise ValueError(f"scale must be one of {', '.join(SCALE_MODES)}, got {self.scale!r}")
        # the scan pass's statistics and rule, as the command line computes them from files
        stats = feature_stats(_chunks(X, self.batch_size), n_features=p)
        self.scaler_ = Standardizer.from_scan(stats, self.scale, dense_source=not sp.issparse(X))
        rows = rng.choice(n, size=min(n, self.sample_size), replace=False) if n > self.sample_size else np.arange(n)
        sample = self._prepare(X[np.sort(rows)])
        # anchors="auto": m from the rows trained on (held-out rows are not) and the features
        auto = config.anchors == AUTO
        config = resolve_anchors(config, p, task, n_classes, n_rows=epoch_rows or n, sample_rows=sample.n_rows,
                                 bits=self.bits, memory_budget=self.memory_budget)
        if config.method != "fm":
            distinct = len(np.unique(sample.to_dense(p), axis=0))
            if distinct < config.anchors:
                warnings.warn(f"only {distinct} distinct rows to place {config.anchors} anchors; "
                              f"using {max(distinct, 1)}", UserWarning)
                config.anchors = max(distinct, 1)
                config.n_candidates = min(config.n_candidates, config.anchors)
        regression = task == "regression"
        self.model_ = initialise_model(
            config, p, task, n_classes, sample=sample, label_mean=float(np.mean(y_enc)) if regression else None,
            class_counts=None if regression else np.bincount(y_enc.astype(np.int64), minlength=n_classes),
            feature_rows=stored_feature_rows(self.scaler_, stats, dense=not sp.issparse(X)), epoch_rows=epoch_rows,
            bits=self.bits, memory_budget=self.memory_budget)
        self.model_.anchors_auto = auto

    def _prepare(self, X) -> Chunk:
        return self.scaler_.transform(_to_chunk(X))

    def _run(self, X, y_enc, order, w=None) -> float:
        """One pass over the rows ``order``; returns their mean loss (weighted by ``w``, if given)."""
        parts = np.split(order, range(self.batch_size, len(order), self.batch_size))
        losses = [self.model_.partial_fit_chunk(self._prepare(X[rows]).with_weights(None if w is None else w[rows]),
                                                y_enc[rows]) for rows in parts if len(rows)]
        losses = np.concatenate(losses) if losses else np.zeros(0)
        return float(np.mean(losses) if w is None or not w[order].sum() > 0 else np.average(losses, weights=w[order]))

    def _fit(self, X, y_enc, task, n_classes, w=None):
        X, y_enc, X_val, y_val, w, w_val = self._validation_split(X, y_enc, w)
        self._initialise(X, y_enc, task, n_classes, epoch_rows=X.shape[0])
        rng = np.random.default_rng(self.model_.config.seed)
        stopper = None if X_val is None else EarlyStopping(self.n_iter_no_change, metric_for(task))
        self.loss_curve_ = []
        self.validation_scores_ = None if stopper is None else []
        self.n_iter_, self.best_epoch_, best = 0, None, None
        for epoch in range(1, self.n_epochs + 1):
            order = rng.permutation(X.shape[0]) if self.shuffle else np.arange(X.shape[0])
            self.loss_curve_.append(self._run(X, y_enc, order, w))
            self.n_iter_ = epoch
            if stopper is None:
                continue
            metrics = self._validation_metrics(X_val, y_val, w_val)
            self.validation_scores_.append(-metrics[stopper.metric])  # higher is better, as in scikit-learn
            stop = stopper.update(epoch, metrics)
            if stopper.improved:
                best = ModelState.capture(self.model_).copy()
            if stop:
                break
        if best is not None:
            best.restore(self.model_)
            self.best_epoch_ = stopper.best_epoch
        return self

    def _early_stopping_on(self, n_samples: int) -> bool:
        if self.early_stopping not in ("auto", True, False):
            raise ValueError(f"early_stopping must be 'auto', True or False, got {self.early_stopping!r}")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if isinstance(self.n_iter_no_change, bool) or int(self.n_iter_no_change) != self.n_iter_no_change \
                or self.n_iter_no_change < 1:
            raise ValueError(f"n_iter_no_change must be a positive integer, got {self.n_iter_no_change!r}")
        if self.n_epochs == 0:  # initialise only: on every row
            return False
        return n_samples > AUTO_MIN_ROWS if self.early_stopping == "auto" else bool(self.early_stopping)

    def _validation_split(self, X, y_enc, w):
        """(X_train, y_train, X_val, y_val, w_train, w_val): scikit-learn's split (stratified for
        classifiers), or no validation rows (None) when early stopping is off."""
        if not self._early_stopping_on(X.shape[0]):
            return X, y_enc, None, None, w, None
        from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

        split = StratifiedShuffleSplit if is_classifier(self) else ShuffleSplit
        cv = split(test_size=self.validation_fraction, random_state=self.random_state)
        idx_train, idx_val = next(cv.split(np.zeros((X.shape[0], 1)), y_enc))
        if len(idx_train) == 0 or len(idx_val) == 0:
            raise ValueError(f"splitting {X.shape[0]} samples into a training and a validation set with "
                             f"validation_fraction={self.validation_fraction} leaves one of them empty")
        idx_train, idx_val = np.sort(idx_train), np.sort(idx_val)
        return (X[idx_train], y_enc[idx_train], X[idx_val], y_enc[idx_val],
                *((None, None) if w is None else (w[idx_train], w[idx_val])))

    def _validation_metrics(self, X, y_enc, w=None) -> dict:
        acc = StreamingMetrics(self.model_.task)
        for a in range(0, X.shape[0], self.batch_size):
            f = self.model_.decision_chunk(self._prepare(X[a:a + self.batch_size]))
            acc.add(y_enc[a:a + self.batch_size],
                    f[:, 0] if self.model_.task == "regression" else self.model_.proba_from_scores(f),
                    None if w is None else w[a:a + self.batch_size])
        return acc.result()

    def _decision(self, X) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        out = [self.model_.decision_chunk(self._prepare(X[a:a + self.batch_size]))
               for a in range(0, X.shape[0], self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.model_.n_outputs))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    @property
    def training_metrics_(self) -> dict:
        """Mean neighbours k, Algorithm 1's want-more rate and the candidate miss rate."""
        check_is_fitted(self, "model_")
        return self.model_.metrics()


class _ClassifierBase(ClassifierMixin, _Base):
    def _encode(self, y):
        return np.searchsorted(self.classes_, y).astype(np.float64)

    def _task(self):
        if len(self.classes_) < 2:
            raise ValueError("the classifier needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {self.classes_[0]!r}")
        return ("binary", 2) if len(self.classes_) == 2 else ("multiclass", len(self.classes_))

    def fit(self, X, y, sample_weight=None):
        """Initialise from (X, y) and train up to ``n_epochs`` shuffled passes (fewer when early
        stopping stops); ``n_epochs=0`` only initialises."""
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        task, C = self._task()
        return self._fit(X, self._encode(y), task, C, _sample_weight(sample_weight, X.shape[0]))

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One SGD pass over the rows of (X, y) in order.

        The first call initialises the model from its data and needs
        ``classes`` (every class that will ever be seen), as in scikit-learn.
        No early stopping (``early_stopping`` and its settings apply to
        ``fit`` only): when to stop is the caller's choice.
        """
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self.classes_ = np.unique(classes)
            task, C = self._task()
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(f"y has labels not in classes: {unknown.tolist()}")
        w = _sample_weight(sample_weight, X.shape[0])
        if first:
            self._initialise(X, self._encode(y), task, C)
        self._run(X, self._encode(y), np.arange(X.shape[0]), w)
        return self

    def decision_function(self, X):
        f = self._decision(X)
        return f[:, 0] if len(self.classes_) == 2 else f

    def predict_proba(self, X):
        f = self._decision(X)
        return self.model_.proba_from_scores(f)

    def predict_log_proba(self, X):
        return np.log(np.clip(self.predict_proba(X), 1e-300, None))

    def predict(self, X):
        best = self.predict_proba(X).argmax(1)
        return self.classes_[best]


class _RegressorBase(RegressorMixin, _Base):
    def fit(self, X, y, sample_weight=None):
        """Initialise from (X, y) and train up to ``n_epochs`` shuffled passes (fewer when early
        stopping stops); ``n_epochs=0`` only initialises."""
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=True)
        return self._fit(X, y.astype(np.float64), "regression", 1, _sample_weight(sample_weight, X.shape[0]))

    def partial_fit(self, X, y, sample_weight=None):
        """One SGD pass over the rows of (X, y) in order; the first call initialises.

        No early stopping (``early_stopping`` and its settings apply to
        ``fit`` only): when to stop is the caller's choice.
        """
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=True, reset=first)
        w = _sample_weight(sample_weight, X.shape[0])
        if first:
            self._initialise(X, y, "regression", 1)
        self._run(X, y.astype(np.float64), np.arange(X.shape[0]), w)
        return self

    def predict(self, X):
        return self._decision(X)[:, 0]


# Each estimator spells out its parameters in its own __init__ (the four signatures repeat one another
# on purpose): scikit-learn reads an estimator's parameters from its __init__ signature. Their defaults
# are Config's and _FIT's, their documentation DOCS and _FIT_DOCS.
def _keep(estimator, params: dict) -> None:
    """Store ``__init__``'s arguments unchanged, as scikit-learn requires."""
    for name, value in params.items():
        if name != "self":
            setattr(estimator, name, value)


@_documented
class FMClassifier(_ClassifierBase):
    """Factorization machine classifier trained by per-row SGD."""

    def __init__(self, rank=Config.rank, optimizer=Config.optimizer, eta0=Config.eta0, t0=Config.t0,
                 l2_w=Config.l2_w, l2_v=Config.l2_v, init_std=Config.init_std, multiclass=Config.multiclass,
                 n_epochs=_FIT.n_epochs, scale=_FIT.scale, shuffle=_FIT.shuffle, sample_size=_FIT.sample_size,
                 batch_size=_FIT.batch_size, random_state=_FIT.random_state, early_stopping=_FIT.early_stopping,
                 validation_fraction=_FIT.validation_fraction, n_iter_no_change=_FIT.n_iter_no_change,
                 bits=_FIT.bits, memory_budget=_FIT.memory_budget):
        _keep(self, locals())


@_documented
class FMRegressor(_RegressorBase):
    """Factorization machine regressor (squared loss) trained by per-row SGD."""

    def __init__(self, rank=Config.rank, optimizer=Config.optimizer, eta0=Config.eta0, t0=Config.t0,
                 l2_w=Config.l2_w, l2_v=Config.l2_v, init_std=Config.init_std, n_epochs=_FIT.n_epochs,
                 scale=_FIT.scale, shuffle=_FIT.shuffle, sample_size=_FIT.sample_size, batch_size=_FIT.batch_size,
                 random_state=_FIT.random_state, early_stopping=_FIT.early_stopping,
                 validation_fraction=_FIT.validation_fraction, n_iter_no_change=_FIT.n_iter_no_change,
                 bits=_FIT.bits, memory_budget=_FIT.memory_budget):
        _keep(self, locals())


@_documented
class LLFMClassifier(_ClassifierBase):
    """Locally linear factorization machine classifier (LLFM-JO by default): per-anchor FMs mixed by a
    local coding of each row."""

    _config_params = _LLFM_PARAMS

    def __init__(self, method=Config.method, rank=Config.rank, anchors=Config.anchors,
                 n_neighbors=Config.n_neighbors, beta=Config.beta, rho=Config.rho, n_candidates=Config.n_candidates,
                 rebuild_every=Config.rebuild_every, optimizer=Config.optimizer, eta0=Config.eta0, t0=Config.t0,
                 eta_anchor=Config.eta_anchor, anchor_epochs=Config.anchor_epochs, anchor_clip=Config.anchor_clip,
                 l2_w=Config.l2_w, l2_v=Config.l2_v,
                 init_std=Config.init_std, multiclass=Config.multiclass, global_fm=Config.global_fm,
                 l2_local=Config.l2_local, jo_exact=Config.jo_exact, n_epochs=_FIT.n_epochs, scale=_FIT.scale,
                 shuffle=_FIT.shuffle, sample_size=_FIT.sample_size, batch_size=_FIT.batch_size,
                 random_state=_FIT.random_state, early_stopping=_FIT.early_stopping,
                 validation_fraction=_FIT.validation_fraction, n_iter_no_change=_FIT.n_iter_no_change,
                 bits=_FIT.bits, memory_budget=_FIT.memory_budget):
        _keep(self, locals())


@_documented
class LLFMRegressor(_RegressorBase):
    """Locally linear factorization machine regressor (squared loss)."""

    _config_params = _LLFM_PARAMS

    def __init__(self, method=Config.method, rank=Config.rank, anchors=Config.anchors,
                 n_neighbors=Config.n_neighbors, beta=Config.beta, rho=Config.rho, n_candidates=Config.n_candidates,
                 rebuild_every=Config.rebuild_every, optimizer=Config.optimizer, eta0=Config.eta0, t0=Config.t0,
                 eta_anchor=Config.eta_anchor, anchor_epochs=Config.anchor_epochs, anchor_clip=Config.anchor_clip,
                 l2_w=Config.l2_w, l2_v=Config.l2_v,
                 init_std=Config.init_std, global_fm=Config.global_fm, l2_local=Config.l2_local,
                 jo_exact=Config.jo_exact, n_epochs=_FIT.n_epochs, scale=_FIT.scale, shuffle=_FIT.shuffle,
                 sample_size=_FIT.sample_size, batch_size=_FIT.batch_size, random_state=_FIT.random_state,
                 early_stopping=_FIT.early_stopping, validation_fraction=_FIT.validation_fraction,
                 n_iter_no_change=_FIT.n_iter_no_change, bits=_FIT.bits, memory_budget=_FIT.memory_budget):
        _keep(self, locals())
