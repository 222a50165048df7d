"""Multivariate drift: can a classifier tell current rows from reference rows?

Per-feature tests miss changes in how features relate (a correlation that flips while every
marginal stays put). A *domain classifier* sees all features at once: label reference rows 0
and current rows 1, train scikit-learn's ``HistGradientBoostingClassifier`` and measure how
well it separates them by the ROC-AUC of out-of-fold scores (k-fold cross-validation, so no
row is scored by a model that saw it). With no drift the AUC is about 0.5.

Threshold (how high is "not chance"): a permutation test on shuffled domain labels. The
labels are shuffled within each fold and the AUC of the same out-of-fold scores recomputed,
``permutations`` times. Under no drift no out-of-fold score depends on its own row's label
and the rows are exchangeable, so these shuffles are draws of the AUC a no-drift world
produces (the test is exact for the pooled AUC; refitting per shuffle, as Ojala & Garriga
(2010) do, would cost ``permutations`` times the training and test the same null). Drift
when the AUC exceeds the ``1 - alpha`` quantile of the shuffles *and* ``min_auc`` (on large
samples a tiny but real difference is significant; ``min_auc`` is the effect size worth an
alert, as Wasserstein's 0.1 is for one feature). ``p_value = (1 + #shuffles >= AUC) / (1 +
permutations)``.

Top features: for each fold's model, each feature's column is shuffled in the held-out fold
and the drop in that fold's AUC recorded (permutation importance), averaged over folds.

Rows are sampled (``max_rows`` per side, uniformly, seeded): the AUC of a 10,000 + 10,000
row sample has a standard error of about 0.003, so sampling costs nothing in the verdict and
keeps the test at a few seconds on any data size. The trees train on ``n_threads`` OpenMP
threads (default 1): on a busy machine OpenMP's spinning threads made one fit 40x slower.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Optional

import numpy as np
import polars as pl

from mlops.constraints import Constrained, Interval, validate

MAX_CATEGORY_CODES = 250  # HistGradientBoosting takes at most 255 categories per feature
_BATCH = 64


def domain_classifier(reference: pl.DataFrame, current: pl.DataFrame, *, numeric: list[str],
                      categorical: list[str], max_rows: int = 10_000, folds: int = 5,
                      permutations: int = 500, alpha: float = 0.05, min_auc: float = 0.55,
                      top_features: int = 5, seed: int = 0, min_rows: int = 50,
                      n_threads: int = 1) -> dict:
    """Dataset-level drift verdict of a domain classifier (see the module docstring).

    Returns ``method, status, drift, auc, threshold, permutation_quantile, p_value, min_auc,
    alpha, ref_rows, cur_rows, ref_sampled, cur_sampled, folds, permutations, top_features
    ([{feature, importance}]), note``. ``status`` is ``drift``, ``no_drift`` or
    ``insufficient_data`` (fewer than ``min_rows`` rows on a side).
    """
    _check(max_rows, folds, permutations, alpha, min_auc, top_features)
    features = [*numeric, *categorical]
    out = {"method": "domain_classifier (HistGradientBoostingClassifier, out-of-fold ROC-AUC)",
           "status": "insufficient_data", "drift": False, "auc": None, "threshold": None,
           "permutation_quantile": None, "p_value": None, "min_auc": min_auc, "alpha": alpha,
           "ref_rows": reference.height, "cur_rows": current.height, "ref_sampled": 0,
           "cur_sampled": 0, "folds": folds, "permutations": permutations, "top_features": [],
           "note": None}
    if min(reference.height, current.height) < max(min_rows, folds):
        out["note"] = (f"{reference.height} reference and {current.height} current rows; the "
                       f"classifier needs >= {max(min_rows, folds)} on each side")
        return out
    rng = np.random.default_rng(seed)
    ref = _sample(reference.select(features), max_rows, rng)
    cur = _sample(current.select(features), max_rows, rng)
    x = _matrix(pl.concat([ref, cur], how="vertical_relaxed"), numeric, categorical)
    y = np.r_[np.zeros(ref.height, dtype=np.int8), np.ones(cur.height, dtype=np.int8)]
    from threadpoolctl import threadpool_limits  # with sklearn: only when the check runs (off in action=drift)
    with threadpool_limits(limits=n_threads, user_api="openmp"):
        scores, fold_of, importance = _cross_validate(x, y, len(numeric), folds, seed, rng)
    auc = auc_from_scores(scores, y)
    null = permutation_aucs(scores, y, fold_of, permutations, rng)
    quantile = float(np.quantile(null, 1.0 - alpha))
    threshold = max(quantile, min_auc)
    drift = bool(auc > threshold)
    order = np.argsort(-importance, kind="stable")[:top_features]
    out.update(status="drift" if drift else "no_drift", drift=drift, auc=auc,
               threshold=threshold, permutation_quantile=quantile,
               p_value=float((1 + np.sum(null >= auc)) / (1 + permutations)),
               ref_sampled=ref.height, cur_sampled=cur.height,
               top_features=[{"feature": features[i], "importance": float(importance[i])}
                             for i in order])
    return out


@dataclass
class MultivariateSettings(Constrained):
    """When and how the domain-classifier test runs (``monitoring.multivariate``)."""

    enabled: Optional[bool] = None        # null: on in action=monitor, off in action=drift
    max_rows: int = 5_000                 # rows sampled per side (reference, current)
    folds: int = 3                        # cross-validation folds for the out-of-fold AUC
    permutations: int = 500               # label shuffles for the AUC threshold
    alpha: float = 0.05                   # drift when the AUC beats the (1 - alpha) quantile
    min_auc: float = 0.55                 # ... and this effect size
    top_features: int = 5
    seed: int = 0
    act: bool = False  # multivariate drift alone triggers on_drift actions (else only reported)

    KEY: ClassVar[str] = "multivariate"
    CONSTRAINTS: ClassVar[dict] = {
        "max_rows": [Interval(int, 20, None)], "folds": [Interval(int, 2, None)],
        "permutations": [Interval(int, 19, None)], "top_features": [Interval(int, 0, None)],
        "alpha": [Interval(float, 0, 1, closed="neither")],
        "min_auc": [Interval(float, 0.5, 1, closed="left")]}

    def check(self) -> None:
        if self.enabled is not False:  # a disabled test is never run: its values are not checked
            super().check()

    def when_unset(self, *, enabled: bool) -> MultivariateSettings:
        """These settings with ``enabled: null`` read as the action's default ``enabled``."""
        return self if self.enabled is not None else replace(self, enabled=enabled)


def multivariate_check(settings: MultivariateSettings, reference: pl.DataFrame | None,
                       current: pl.DataFrame, numeric: list[str], categorical: list[str], *,
                       min_rows: int) -> dict | None:
    """The ``multivariate`` block of a drift result: None when disabled; a note when the
    reference keeps no row sample."""
    s = settings
    if not s.enabled:
        return None
    if reference is None:
        return {"status": "insufficient_data", "drift": False, "auc": None, "acts": s.act,
                "note": "the reference holds no row sample (a reference saved before the "
                        "multivariate test existed): retrain, or compare data files with action=drift"}
    out = domain_classifier(reference, current, numeric=numeric, categorical=categorical,
                            max_rows=s.max_rows, folds=s.folds, permutations=s.permutations,
                            alpha=s.alpha, min_auc=s.min_auc, top_features=s.top_features,
                            seed=s.seed, min_rows=min_rows)
    out["acts"] = s.act
    return out


def auc_from_scores(scores: np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties as halves (= sklearn's).

    >>> auc_from_scores(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    from scipy.stats import rankdata  # here: ~0.5 s to import; the config schema imports this module
    ranks = rankdata(scores)
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def permutation_aucs(scores: np.ndarray, y: np.ndarray, fold_of: np.ndarray, permutations: int,
                     rng: np.random.Generator) -> np.ndarray:
    """AUCs of ``scores`` against labels shuffled within each fold, ``permutations`` times."""
    from scipy.stats import rankdata  # here: see auc_from_scores
    ranks = rankdata(scores)
    n1, n0 = int(y.sum()), int(y.size - y.sum())
    sums = np.zeros(permutations)
    for f in np.unique(fold_of):
        idx = np.flatnonzero(fold_of == f)
        labels, r = y[idx].astype(np.float64), ranks[idx]
        for start in range(0, permutations, _BATCH):
            b = min(_BATCH, permutations - start)
            shuffled = rng.permuted(np.broadcast_to(labels, (b, labels.size)), axis=1)
            sums[start:start + b] += shuffled @ r
    return (sums - n1 * (n1 + 1) / 2) / (n1 * n0)


def _cross_validate(x: np.ndarray, y: np.ndarray, n_numeric: int, folds: int, seed: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # scikit-learn costs ~1 s to import: only when the check runs (off by default in action=drift)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold
    scores = np.zeros(y.size)
    fold_of = np.zeros(y.size, dtype=np.int32)
    importance = np.zeros(x.shape[1])
    mask = np.r_[np.zeros(n_numeric, bool), np.ones(x.shape[1] - n_numeric, bool)]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(x, y)):
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, early_stopping=False, random_state=seed,
            categorical_features=mask if mask.any() else None)
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
        fold_of[test] = k
        base = auc_from_scores(scores[test], y[test])
        for j in range(x.shape[1]):  # permutation importance on the held-out fold
            shuffled = x[test].copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            importance[j] += base - auc_from_scores(model.predict_proba(shuffled)[:, 1], y[test])
    return scores, fold_of, importance / folds


def _sample(df: pl.DataFrame, n: int, rng: np.random.Generator) -> pl.DataFrame:
    if df.height <= n:
        return df
    return df[np.sort(rng.choice(df.height, size=n, replace=False))]


def _matrix(df: pl.DataFrame, numeric: list[str], categorical: list[str]) -> np.ndarray:
    """Numeric columns as floats (null/NaN/inf -> NaN: the trees route missing values), then
    categorical columns as codes by frequency (the rarest beyond 250 share one code)."""
    cols = []
    for name in numeric:
        v = df.get_column(name).cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
        v[~np.isfinite(v)] = np.nan
        cols.append(v)
    for name in categorical:
        s = df.get_column(name).cast(pl.String)
        counts = s.drop_nulls().value_counts(sort=True, name="n")
        cats = counts.get_column(name).to_list()
        codes = s.replace_strict(cats[:MAX_CATEGORY_CODES], list(range(min(len(cats), MAX_CATEGORY_CODES))),
                                 default=MAX_CATEGORY_CODES, return_dtype=pl.Float64)
        v = codes.to_numpy().astype(np.float64, copy=True)
        v[s.is_null().to_numpy()] = np.nan
        cols.append(v)
    return np.column_stack(cols) if cols else np.empty((df.height, 0))


def _check(max_rows, folds, permutations, alpha, min_auc, top_features) -> None:
    validate(dict(max_rows=max_rows, folds=folds, permutations=permutations,
                  top_features=top_features, alpha=alpha, min_auc=min_auc),
             MultivariateSettings.CONSTRAINTS, prefix=MultivariateSettings.KEY)
