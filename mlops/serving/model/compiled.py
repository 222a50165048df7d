"""The served model compiled for small batches: its own preprocessing, without per-call overhead.

sklearn's ``Pipeline(ColumnTransformer(...), estimator).predict_proba`` on a one-row polars
frame costs ~3 ms, almost all of it input validation and dataframe conversion, while the
estimator itself needs ~0.1-0.5 ms. :func:`compile_model` rebuilds the same computation
from the fitted attributes:

- numeric blocks (``SimpleImputer`` and/or ``StandardScaler``, alone or in a Pipeline):
  the same float64 operations on a numpy matrix (fill NaN with ``statistics_``, subtract
  ``mean_``, divide by ``scale_``);
- blocks whose inputs are all strings (``OneHotEncoder``, ``OrdinalEncoder``, ...):
  each row's output depends only on that row's values, so it is the fitted transformer's
  own output for that tuple of values, memoized (bounded);
- the final estimator's ``predict_proba`` on the assembled matrix.

It is used only when exact: anything else (other transformers, sparse output, an
estimator fitted on feature names) returns None and the caller uses the model itself; a
compiled model must also reproduce ``model.predict_proba`` on a probe sample within
1e-9 when compiled, else it is discarded.

Example:
    >>> fast = compile_model(pipe, plan.feature_names, categorical=plan.categorical)  # doctest: +SKIP
    >>> fast.predict_proba(X)  # same numbers as pipe.predict_proba(X)               # doctest: +SKIP
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy.special import expit
from sklearn.base import is_regressor

_MEMO_MAX = 100_000   # distinct category tuples kept per block (a hostile client can't grow it)
_TOLERANCE = 1e-9


class _NumericBlock:
    """Impute (optional) then scale (optional), on float64 columns."""

    def __init__(self, cols: list[str], fill: np.ndarray | None, mean, scale):
        self.cols, self.fill, self.mean, self.scale = cols, fill, mean, scale

    def __call__(self, X: pl.DataFrame) -> np.ndarray:
        out = np.column_stack([X[c].cast(pl.Float64).to_numpy() for c in self.cols]) \
            if self.cols else np.empty((X.height, 0))
        return self._finish(np.array(out, dtype=np.float64))  # a writable copy

    def rows(self, rows: list[dict]) -> np.ndarray:
        """The same block from row dicts (None -> NaN, as polars' to_numpy)."""
        out = np.array([[math.nan if r[c] is None else r[c] for c in self.cols] for r in rows],
                       dtype=np.float64).reshape(len(rows), len(self.cols))
        return self._finish(out)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        if self.fill is not None:
            nan = np.isnan(out)
            if nan.any():
                out[nan] = np.broadcast_to(self.fill, out.shape)[nan]
        if self.mean is not None:
            out -= self.mean
        if self.scale is not None:
            out /= self.scale
        return out


class _MemoBlock:
    """The fitted transformer's output per distinct tuple of (string) inputs."""

    def __init__(self, cols: list[str], trans):
        self.cols, self.trans, self.memo = cols, trans, {}

    def __call__(self, X: pl.DataFrame) -> np.ndarray:
        return self._lookup(list(zip(*(X[c].to_list() for c in self.cols))))

    def rows(self, rows: list[dict]) -> np.ndarray:
        """The same block from row dicts."""
        return self._lookup([tuple(r[c] for c in self.cols) for r in rows])

    def _lookup(self, keys: list[tuple]) -> np.ndarray:
        missing = list(dict.fromkeys(k for k in keys if k not in self.memo))
        if missing:
            frame = pl.DataFrame(missing, schema={c: pl.String for c in self.cols},
                                 orient="row")
            rows = self.trans.transform(frame)
            rows = np.asarray(rows.toarray() if hasattr(rows, "toarray") else rows,
                              dtype=np.float64)  # a sparse encoder: the CT densifies too
            if len(self.memo) + len(missing) <= _MEMO_MAX:
                self.memo.update(zip(missing, rows))
            else:  # full: answer from this call's output without remembering it
                fresh = dict(zip(missing, rows))
                return np.vstack([self.memo.get(k, fresh.get(k)) for k in keys])
        return np.vstack([self.memo[k] for k in keys])


class _BinaryLogistic:
    """A fitted binary ``LogisticRegression``'s ``predict_proba`` without its per-call
    input validation (~0.1 ms): the same operations sklearn 1.9 runs after it
    (``X @ coef_.T + intercept_``, ``expit``, ``[1 - p, p]``) on our float64 matrix."""

    def __init__(self, est):
        self.est, self.coef_t, self.intercept = est, est.coef_.T, est.intercept_
        self.classes_ = est.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        prob = (X @ self.coef_t + self.intercept).reshape(-1)
        prob = expit(prob, out=prob)
        return np.stack([1 - prob, prob], axis=1)


def _estimator(est):
    if type(est).__name__ == "LogisticRegression" and np.size(est.classes_) == 2 \
            and np.ndim(est.coef_) == 2 and est.coef_.shape[0] == 1:
        return _BinaryLogistic(est)
    return est


class CompiledModel:
    """``predict_proba`` of a fitted Pipeline(ColumnTransformer, estimator), for small batches."""

    def __init__(self, blocks: list[tuple[slice, object]], width: int, estimator):
        self.blocks, self.width, self.estimator = blocks, width, estimator
        self.classes_ = getattr(estimator, "classes_", None)
        self.steps = [("model", getattr(estimator, "est", estimator))]  # callers read the final estimator's type here

    def transform(self, X: pl.DataFrame) -> np.ndarray:
        out = np.empty((X.height, self.width), dtype=np.float64)
        for where, block in self.blocks:
            out[:, where] = block(X)
        return out

    def predict_proba(self, X: pl.DataFrame | list[dict]) -> np.ndarray:
        """``predict_proba`` of a frame of features, or of feature rows given as dicts
        (the rows backend's output: no frame is built)."""
        if isinstance(X, list):
            return self.predict_proba_rows(X)
        return self.estimator.predict_proba(self.transform(X))

    def predict_proba_rows(self, rows: list[dict]) -> np.ndarray:
        """``predict_proba`` of feature rows given as dicts."""
        out = np.empty((len(rows), self.width), dtype=np.float64)
        for where, block in self.blocks:
            out[:, where] = block.rows(rows)
        return self.estimator.predict_proba(out)


def _numeric(trans, cols: list[str]) -> _NumericBlock | None:
    steps = [s for _, s in trans.steps] if hasattr(trans, "steps") else [trans]
    fill = mean = scale = None
    for step in steps:
        name = type(step).__name__
        if name == "SimpleImputer" and fill is None and mean is None and scale is None:
            stats = np.asarray(step.statistics_, dtype=np.float64)
            mv = step.missing_values
            if step.add_indicator or np.isnan(stats).any() \
                    or not (mv is None or (isinstance(mv, float) and np.isnan(mv))):
                return None
            fill = stats
        elif name == "StandardScaler" and mean is None and scale is None:
            mean = step.mean_ if step.with_mean else None
            scale = step.scale_ if step.with_std else None
        else:
            return None
    return _NumericBlock(cols, fill, mean, scale)


def _probe(cols: Sequence[str], categorical: set, known: dict[str, list], n: int = 64
           ) -> pl.DataFrame:
    """A deterministic sample with nulls, unknown categories and large values."""
    rng = np.random.default_rng(0)
    data = {}
    for c in cols:
        if c in categorical:
            pool = list(known.get(c, [])) + [None, "__unseen__"]
            data[c] = pl.Series(c, [pool[i % len(pool)] for i in range(n)], dtype=pl.String)
        else:
            v = rng.normal(0, 1000, n)
            data[c] = pl.Series(c, [None if i % 7 == 3 else float(x) for i, x in enumerate(v)],
                                dtype=pl.Float64)
    return pl.DataFrame(data)


def compile_model(model, feature_names: Sequence[str], *, categorical: Sequence[str],
                  known_categories: dict[str, set] | None = None) -> CompiledModel | None:
    """The fast equivalent of ``model.predict_proba``, or None when it can't be exact."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2:
        return None
    ct, est = steps[0][1], steps[1][1]
    if type(ct).__name__ != "ColumnTransformer" or not hasattr(ct, "transformers_") \
            or getattr(ct, "sparse_output_", False) or not hasattr(est, "predict_proba") \
            or hasattr(est, "feature_names_in_") or is_regressor(est):
        return None
    cats = set(categorical)
    blocks, width = [], 0
    for name, trans, cols in ct.transformers_:
        where = ct.output_indices_.get(name, slice(0, 0))
        if trans == "drop" or where.stop == where.start:
            continue
        if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
            return None
        cols = list(cols)
        if trans == "passthrough":
            block = _NumericBlock(cols, None, None, None) if not cats & set(cols) else None
        elif cats.issuperset(cols):
            block = _MemoBlock(cols, trans)
        elif not cats & set(cols):
            block = _numeric(trans, cols)
        else:
            block = None
        if block is None:
            return None
        blocks.append((where, block))
        width = max(width, where.stop)
    fast = CompiledModel(blocks, width, _estimator(est))
    known = {c: sorted(v) for c, v in (known_categories or {}).items()}
    probe = _probe(feature_names, cats, known)
    try:
        ok = np.allclose(fast.predict_proba(probe), model.predict_proba(probe),
                         rtol=0, atol=_TOLERANCE)
    except Exception:  # the model refuses the probe: no fast path, no harm
        return None
    return fast if ok else None
