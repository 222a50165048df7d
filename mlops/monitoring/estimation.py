"""Performance before labels: confidence-based performance estimation (CBPE).

A binary classifier's calibrated probability ``p`` is the chance its row is positive.
If calibration holds on new data, a chunk's confusion matrix can be *expected* without
labels: a predicted positive (``score >= threshold``) is a true positive with chance
``p``, a false positive with chance ``1 - p``, and so on. This is NannyML's CBPE
(``nannyml/performance_estimation/confidence_based``), matched here:

- **calibration** is checked on a reference period with labels (the model's test
  window): expected calibration error (ECE, equal-count bins) of the raw scores vs of
  isotonic-recalibrated scores in 10 stratified 90/10 splits (NannyML's
  ``needs_calibration``); isotonic regression (clipped) is used only when it lowers ECE;
- **ROC-AUC**: sort rows by the model's raw score (descending); expected true/false
  positives at each cut are the cumulative sums of ``p`` and ``1 - p``; the estimate is
  the trapezoidal area under expected FPR/TPR. One difference from NannyML: tied
  scores are cut together (as ``sklearn.metrics.roc_curve`` does) rather than in
  arbitrary order, so feeding 0/1 labels as ``p`` reproduces ``roc_auc_score`` exactly;
- **precision** = sum(p | predicted 1) / #predicted 1; **recall** = sum(p | predicted 1)
  / sum(p). Precision is exactly unbiased (its denominator is fixed); AUC and recall are
  ratios of expectations (bias O(1/n)).

What it cannot see: concept drift. CBPE assumes ``P(label | score)`` is the reference's;
when the relation itself changes (new positives that score low), the estimate stays high
while realized performance drops. Each chunk therefore carries a 95% band of the
realized value *if* calibration held (labels simulated from ``p``); a realized value
outside that band says the assumption broke.

Regression models get no estimate here (NannyML's DLE is not implemented).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mlops.constraints import Interval, Options, check
from mlops.errors import DataError
from mlops.monitoring.columns import require_columns
from mlops.monitoring.performance import _chunked

METRICS = ("roc_auc", "precision", "recall")
CALIBRATION_METHODS = ("auto", "isotonic", "none")
ASSUMPTION = ("CBPE assumes P(label | score) is unchanged since the reference period: it "
              "follows covariate shift but cannot see concept drift (a realized value outside "
              "the band shows the assumption broke)")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-count bins of ``p`` (sorted), as NannyML computes it.

    >>> round(expected_calibration_error(np.array([0, 0, 1, 1]), np.array([.1, .3, .6, .9]), 2), 3)
    0.225
    """
    y, p = np.asarray(y, float), np.asarray(p, float)
    n = p.size
    if n < 2:
        raise DataError(f"calibration needs at least 2 labelled rows; got {n}", key="reference",
                        fix="use a reference period with labelled rows")
    if n <= 2 * bins:
        bins = max(n // 2, 1)
    order = np.argsort(p, kind="stable")
    p, y = p[order], y[order]
    width = n // bins
    edges = list(range(0, n + 1, width))
    edges[-1] = n
    return float(sum((b - a) / n * abs(p[a:b].mean() - y[a:b].mean())
                     for a, b in zip(edges[:-1], edges[1:]) if b > a))


@dataclass
class Calibration:
    """How scores map to probabilities, and why (fitted on a labelled reference)."""

    method: str                               # "isotonic" or "none" (scores used as they are)
    needed: bool                              # isotonic lowered ECE in every held-out check
    ece_raw: float | None = None              # ECE of raw scores (held-out splits pooled)
    ece_calibrated: float | None = None       # ECE of isotonic scores on the same splits
    rows: int = 0
    positives: int = 0
    x: list[float] = field(default_factory=list)   # isotonic knots: score -> probability
    y: list[float] = field(default_factory=list)
    # isotonic refits on bootstrap resamples of the reference: its own uncertainty
    boot: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (isotonic: linear between knots, clipped outside)."""
        scores = np.asarray(scores, float)
        if self.method == "none":
            return np.clip(scores, 0.0, 1.0)
        return np.interp(scores, np.asarray(self.x), np.asarray(self.y))

    def resampled(self, scores: np.ndarray) -> list[np.ndarray]:
        """Probabilities under each bootstrap refit (empty without isotonic calibration)."""
        scores = np.asarray(scores, float)
        return [np.interp(scores, bx, by) for bx, by in self.boot]

    def as_dict(self) -> dict:
        """JSON-safe summary (knots included so a reader can re-apply the mapping)."""
        return {"method": self.method, "needed": self.needed, "ece_raw": self.ece_raw,
                "ece_calibrated": self.ece_calibrated, "rows": self.rows,
                "positives": self.positives, "knots": len(self.x),
                "bootstrap_refits": len(self.boot)}


def fit_calibration(y: np.ndarray, scores: np.ndarray, *, method: str = "auto", bins: int = 10,
                    splits: int = 10, seed: int = 42, bootstrap: int = 50,
                    groups: np.ndarray | None = None) -> Calibration:
    """Check calibration on a labelled reference and recalibrate when it helps.

    ``method="auto"`` follows NannyML's ``needs_calibration``: in ``splits`` stratified
    90/10 splits, isotonic regression is fitted on 90% and both raw and isotonic scores
    of the held-out 10% are pooled; isotonic is used when it lowers the pooled ECE
    (never when the reference AUC > 0.999 or it holds one class). ``"isotonic"`` always
    recalibrates, ``"none"`` never does (ECE is still reported). With isotonic, it is
    also refitted on ``bootstrap`` resamples of the reference, so the sampling band of
    :func:`sampling_band` covers the calibration's own uncertainty, not only the chunk's.
    ``groups`` (e.g. the entity of each row) makes that a cluster bootstrap: labels of
    one entity are correlated (positives often come in bursts on one entity), so resampling rows
    one by one would understate the uncertainty.
    """
    from sklearn.isotonic import IsotonicRegression  # with sklearn: only when CBPE runs
    from sklearn.metrics import roc_auc_score
    check("calibration", method, [Options(*CALIBRATION_METHODS)], fix="use auto, isotonic or none")
    y, scores = np.asarray(y, float), np.asarray(scores, float)
    ok = np.isfinite(y) & np.isfinite(scores)
    y, scores = y[ok], scores[ok]
    if groups is not None:
        groups = np.unique(np.asarray(groups)[ok], return_inverse=True)[1]
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("the reference labels must be 0/1 for CBPE", key="label",
                        fix="encode the positive class as 1 (CBPE covers binary classifiers)")
    cal = Calibration(method="none", needed=False, rows=int(y.size), positives=int(y.sum()))
    if y.size < 20 or np.unique(y).size < 2:
        if method == "isotonic":
            raise DataError(f"the reference holds {y.size} labelled rows and "
                            f"{int(y.sum())} positives: too few to fit isotonic calibration",
                            key="reference", fix="use a longer reference window or "
                                                 "calibration=none")
        return cal
    cal.ece_raw, cal.ece_calibrated = _held_out_ece(y, scores, bins, splits, seed)
    cal.needed = bool(cal.ece_calibrated < cal.ece_raw and roc_auc_score(y, scores) <= 0.999)
    if method == "isotonic" or (method == "auto" and cal.needed):
        iso = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores, y)
        cal.method, cal.x, cal.y = "isotonic", iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()
        rng = np.random.default_rng(seed)
        for _ in range(bootstrap):
            i = _resample(rng, y.size, groups)
            b = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores[i], y[i])
            cal.boot.append((b.X_thresholds_, b.y_thresholds_))
    return cal


def _resample(rng: np.random.Generator, n: int, groups: np.ndarray | None) -> np.ndarray:
    """Row indices of one bootstrap sample: rows, or whole groups drawn with replacement."""
    if groups is None:
        return rng.integers(0, n, n)
    order = np.argsort(groups, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(groups[order])) + 1]
    sizes = np.diff(np.r_[starts, n])
    pick = rng.integers(0, starts.size, starts.size)
    return np.concatenate([order[starts[g]:starts[g] + sizes[g]] for g in pick])


def _held_out_ece(y, scores, bins, splits, seed) -> tuple[float, float]:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.model_selection import StratifiedShuffleSplit
    sss = StratifiedShuffleSplit(n_splits=splits, test_size=0.1, random_state=seed)
    ys, raw, iso = [], [], []
    for train, test in sss.split(scores, y):
        fit = IsotonicRegression(out_of_bounds="clip", increasing=True).fit(scores[train], y[train])
        ys.append(y[test])
        raw.append(scores[test])
        iso.append(fit.predict(scores[test]))
    yy = np.concatenate(ys)
    return (expected_calibration_error(yy, np.concatenate(raw), bins),
            expected_calibration_error(yy, np.concatenate(iso), bins))


def estimate_roc_auc(prob: np.ndarray, scores: np.ndarray) -> float | None:
    """Expected ROC-AUC: area under expected (FPR, TPR) as the cut moves down ``scores``.

    ``prob`` are calibrated probabilities (expected labels); with 0/1 labels in their
    place this is exactly ``sklearn.metrics.roc_auc_score(labels, scores)``.

    >>> estimate_roc_auc(np.array([0., 0., 1., 1.]), np.array([.1, .4, .35, .8]))
    0.75
    """
    prob, scores = np.asarray(prob, float), np.asarray(scores, float)
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], prob[order]
    tps, fps = np.cumsum(p), np.cumsum(1.0 - p)
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # cut after each run of tied scores
    tps, fps = np.r_[0.0, tps[last]], np.r_[0.0, fps[last]]
    if s.size == 0 or tps[-1] <= 0 or fps[-1] <= 0:
        return None  # no expected positives (or negatives): AUC is undefined
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def estimate_precision(pred: np.ndarray, prob: np.ndarray) -> float | None:
    """Expected precision: mean calibrated probability of the predicted positives."""
    pred = np.asarray(pred, bool)
    return float(np.asarray(prob, float)[pred].mean()) if pred.any() else None


def estimate_recall(pred: np.ndarray, prob: np.ndarray) -> float | None:
    """Expected recall: expected true positives over expected positives."""
    prob = np.asarray(prob, float)
    total = prob.sum()
    return float(prob[np.asarray(pred, bool)].sum() / total) if total > 0 else None


def realized_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """ROC-AUC (raw scores), precision and recall at ``threshold``; None where undefined."""
    from sklearn.metrics import roc_auc_score
    y, scores = np.asarray(y, float), np.asarray(scores, float)
    pred = scores >= threshold
    pos = y == 1
    return {"roc_auc": float(roc_auc_score(y, scores)) if np.unique(y).size == 2 else None,
            "precision": float(pos[pred].mean()) if pred.any() else None,
            "recall": float(pred[pos].mean()) if pos.any() else None}


def sampling_band(prob: np.ndarray | list[np.ndarray], scores: np.ndarray, threshold: float, *,
                  draws: int = 200, seed: int = 0, level: float = 0.95) -> dict:
    """Where realized metrics would fall if calibration held: labels drawn from ``prob``.

    ``prob`` is one probability vector, or several (one per bootstrap refit of the
    calibration: draws cycle through them, so the band also covers how well the
    reference pinned the calibration down). Returns ``{metric: [low, high]}``: the
    central ``level`` interval over ``draws`` simulated label sets (draws where a metric
    is undefined are left out). AUC uses the rank-sum form with average ranks for ties,
    vectorised over the draws.
    """
    from scipy.stats import rankdata
    probs = [np.asarray(p, float) for p in (prob if isinstance(prob, list) else [prob])]
    scores = np.asarray(scores, float)
    if scores.size == 0 or not probs:
        return {m: None for m in METRICS}
    rng = np.random.default_rng(seed)
    pred = scores >= threshold
    ranks = rankdata(scores)
    step = max(1, 4_000_000 // scores.size)  # draws per batch: bounded memory on big chunks
    parts = {"roc_auc": [], "precision": [], "recall": []}
    for start in range(0, draws, step):
        k = min(step, draws - start)
        p = np.stack([probs[(start + j) % len(probs)] for j in range(k)])
        y = rng.random((k, scores.size)) < p   # draws x rows
        n_pos = y.sum(axis=1).astype(float)
        n_neg = scores.size - n_pos
        tp = (y & pred).sum(axis=1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts["roc_auc"].append((y @ ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
            parts["precision"].append(tp / pred.sum() if pred.any() else np.full(len(y), np.nan))
            parts["recall"].append(tp / n_pos)
    lo, hi = 50 * (1 - level), 50 * (1 + level)
    out = {}
    for name, chunks in parts.items():
        vals = np.concatenate(chunks)
        vals = vals[np.isfinite(vals)]
        out[name] = ([float(np.percentile(vals, lo)), float(np.percentile(vals, hi))]
                     if vals.size >= 10 else None)
    return out


def estimate_by_chunk(df: pl.DataFrame, *, time_col: str, score_col: str, label_col: str | None,
                      chunk: str | int, threshold: float, calibration: Calibration,
                      labelled_col: str | None = None, min_labelled_share: float = 0.9,
                      seed: int = 0) -> list[dict]:
    """Per chunk: estimated metrics, their sampling band, realized metrics once labels are in.

    Each dict: ``start, end, rows, labelled_rows, labelled_share, expected_positives,
    positives, estimated, band, realized, shown, value, outside_band, note``.
    ``estimated``/``realized``/``value`` map ``roc_auc``, ``precision``, ``recall`` to a
    number or None. ``realized`` is computed on the chunk's labelled rows (``label_col``
    not null, and ``labelled_col`` true when given); ``shown`` is ``"realized"`` when at
    least ``min_labelled_share`` of the chunk is labelled, else ``"estimated"``, and
    ``value`` holds the shown numbers. ``outside_band`` lists metrics whose realized
    value falls outside the band: calibration (hence the estimate) no longer holds.
    Rows without a score are left out. Chunks as in :func:`performance_by_chunk`.
    """
    check("min_labelled_share", min_labelled_share, [Interval(float, 0, 1, closed="both")])
    cols = [time_col, score_col, *([label_col] if label_col else []),
            *([labelled_col] if labelled_col else [])]
    require_columns(df, cols, what="estimation data")
    frame = (df.select(cols).filter(pl.col(score_col).is_not_null()
                                    & pl.col(score_col).cast(pl.Float64).is_finite()))
    if frame.height == 0:
        return []
    out = []
    for i, part in enumerate(_chunked(frame, time_col, chunk).partition_by("__chunk",
                                                                        maintain_order=True)):
        out.append(_chunk(part, time_col, score_col, label_col, labelled_col, threshold,
                          calibration, min_labelled_share, seed + i))
    return out


def _chunk(part, time_col, score_col, label_col, labelled_col, threshold, calibration,
           min_share, seed) -> dict:
    scores = part[score_col].cast(pl.Float64).to_numpy()
    prob = calibration.apply(scores)
    pred = scores >= threshold
    estimated = {"roc_auc": estimate_roc_auc(prob, scores),
                 "precision": estimate_precision(pred, prob),
                 "recall": estimate_recall(pred, prob)}
    rec = {"start": _iso(part["__start"][0]), "end": _iso(part["__end"][0]),
           "rows": part.height, "labelled_rows": 0, "labelled_share": 0.0,
           "expected_positives": float(prob.sum()), "positives": None,
           "estimated": estimated,
           "band": sampling_band(calibration.resampled(scores) or prob, scores, threshold,
                                 seed=seed),
           "realized": None, "shown": "estimated", "value": estimated, "outside_band": [],
           "note": None}
    known = pl.lit(False)
    if label_col:
        known = pl.col(label_col).is_not_null()
        if labelled_col:
            known = known & pl.col(labelled_col)
    labelled = part.filter(known)
    if labelled.height:
        y = labelled[label_col].cast(pl.Float64).to_numpy()
        if not np.isin(y, (0.0, 1.0)).all():
            raise DataError(f"the label column {label_col!r} must hold 0/1 labels for CBPE",
                            key=label_col, fix="encode the positive class as 1")
        realized = realized_metrics(y, labelled[score_col].cast(pl.Float64).to_numpy(), threshold)
        share = labelled.height / part.height
        rec.update(labelled_rows=labelled.height, labelled_share=share, positives=int(y.sum()),
                   realized=realized)
        if share >= min_share:
            rec["shown"] = "realized"
            rec["value"] = realized
            rec["outside_band"] = [m for m in METRICS if realized[m] is not None and
                                   rec["band"][m] is not None and
                                   not rec["band"][m][0] <= realized[m] <= rec["band"][m][1]]
        else:
            rec["note"] = f"{share:.0%} of the chunk labelled so far: showing the estimate"
    elif label_col:
        rec["note"] = "no labels yet: showing the estimate"
    return rec


def _iso(value: object) -> str | None:
    return None if value is None else value.isoformat()
