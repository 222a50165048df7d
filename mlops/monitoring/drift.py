"""Data drift: compare a current window with the fitted reference, feature by feature.

:func:`detect_drift` returns the ``monitor.json`` contract::

    {"features": {name: {...}}, "drift_share", "dataset_drift", "dataset_status",
     "dataset_reason", "n_features", "n_drifted", "n_insufficient", "n_unjudgeable", "cur_rows", "policy",
     "calibration", "reference_values"}

Each numeric feature: ``type, test, threshold, status, drift, score, psi, js, ks_stat, ks_pvalue,
wasserstein, exact`` (False: KS and Wasserstein on a declared sample of the reference;
``reference_values`` says which), ``ref_rows, cur_rows, ref_null_share, cur_null_share, cur_nonfinite, hist, note``;
each categorical feature has ``chi2_stat, chi2_pvalue, unseen_share`` instead of the KS and
Wasserstein fields. ``score`` is the deciding statistic (the p-value for KS and chi-square).
``*_rows`` count all rows, nulls and NaN/inf included; statistics use the valid values only.
``hist`` is ``{"edges" | "categories", "ref", "cur"}`` shares for an overlaid histogram;
categorical hists keep the ``HIST_MAX_CATEGORIES - 1`` most frequent reference categories
and pool the rest into ``"<other>"``, and always end with the ``"<unseen>"`` bin.
Undefined values (an empty window, an all-NaN column) are ``None`` with a ``note``, never NaN.

``status`` is ``drift``, ``no_drift``, ``insufficient_data`` or ``reference_too_variable``: a
feature whose deciding test lacks the policy's minimum number of valid current (or reference)
values is never drift; its statistics are still shown and the ``note`` says why. A calibrated
limit past the most its statistic can reach (a JS distance or KS statistic above 1: the
reference's own chunks differ that much, e.g. a season inside the training period) would
never fire: the feature is ``reference_too_variable``, counted in ``n_unjudgeable``, and the
note names the fix (a reference like the current period). The dataset drifts only when the window
has at least ``min_rows_dataset`` rows, at least one feature could be decided, and either any
feature is past its limit (the default with calibrated limits: each set for the family judged
together) or the share of drifted features (over all features) reaches a declared
``drift_share``; ``dataset_reason`` says why.

Speed: each current column is sorted once (numpy's vectorised sort) and reused for binning
(binary searches on the edges), KS and Wasserstein (one merge with the pre-sorted reference);
calibration chunks cost ``O(n log N)`` each (:mod:`mlops.monitoring.chunk_stats`); features
run on a thread pool (numpy and polars release the GIL). Measured against a per-column scipy
loop in the same run by ``benchmarks/bench_drift.py``.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import polars as pl

from mlops.errors import ConfigError
from mlops.monitoring import stats
from mlops.monitoring.calibration import STATISTIC_MAX, ChunkLayout, Limit, chunk_layout
from mlops.monitoring.columns import categorical_column, category_counts, numeric_column, require_columns
from mlops.monitoring.feature_limits import categorical_limit, missing_limit, numeric_limit
from mlops.monitoring.policy import DRIFT, INSUFFICIENT, NO_DRIFT, UNJUDGEABLE, DriftPolicy, is_drift
from mlops.monitoring.reference import CategoricalReference, NumericReference, Reference, reference_values_info

__all__ = ["DriftPolicy", "detect_drift", "HIST_MAX_CATEGORIES"]

HIST_MAX_CATEGORIES = 30
UNSEEN_LABEL = "<unseen>"
OTHER_LABEL = "<other>"


def detect_drift(reference: Reference, current: pl.DataFrame, policy: DriftPolicy | None = None,
                 *, progress: Callable[[int, int, str], None] | None = None,
                 n_jobs: int | None = None, family_size: int | None = None) -> dict:
    """Compare ``current`` with ``reference``: all statistics per feature, drift decisions,
    and the dataset-level rule. ``progress(done, total, feature)`` is called after each feature
    (in feature order). Features run on ``n_jobs`` threads (default: the CPU count, at most 8);
    the sorts and merges release the GIL. Results do not depend on ``n_jobs``.
    ``family_size``: how many statistics are judged together (default: the reference's
    features); the calibrated limits are set for that family (``DriftPolicy.drift_k``).

    >>> from mlops.monitoring.reference import fit_reference
    >>> ref = fit_reference(pl.DataFrame({"x": [float(i) for i in range(100)]}),
    ...                     numeric=["x"], categorical=[])
    >>> out = detect_drift(ref, pl.DataFrame({"x": [float(i) + 50 for i in range(100)]}),
    ...                    DriftPolicy(method="fixed"))
    >>> out["features"]["x"]["test"], out["features"]["x"]["drift"], out["dataset_drift"]
    ('ks', True, True)
    """
    policy = policy if policy is not None else DriftPolicy(n_bins=reference.n_bins)
    policy = dataclasses.replace(policy, family_size=max(family_size or len(reference.features), 1))
    _check_inputs(reference, current, policy, n_jobs)
    layout = None
    if policy.calibrated and reference.rows is not None and current.height:
        layout = chunk_layout(reference.rows.rows, current.height, min_chunks=policy.min_chunks,
                              max_chunks=policy.max_chunks)
    features = _all_features(reference, current, policy, progress, n_jobs, layout)
    total = len(reference.features)
    n_drifted = sum(1 for f in features.values() if f["drift"])
    n_insufficient = sum(1 for f in features.values() if f["status"] == INSUFFICIENT)
    n_unjudgeable = sum(1 for f in features.values() if f["status"] == UNJUDGEABLE)
    drift_share = n_drifted / total if total else 0.0
    status, reason = _dataset_status(current.height, total, n_insufficient + n_unjudgeable,
                                     drift_share, policy)
    quality = [{"feature": name, "issue": f["quality"]} for name, f in features.items() if f.get("quality")]
    return _json_safe({"features": features, "quality": quality, "drift_share": drift_share,
                       "dataset_drift": status == DRIFT, "dataset_status": status,
                       "dataset_reason": reason, "n_features": total, "n_drifted": n_drifted,
                       "n_insufficient": n_insufficient, "n_unjudgeable": n_unjudgeable,
                       "cur_rows": current.height,
                       "policy": policy.to_dict(), "calibration": _calibration_info(reference, policy, layout),
                       "reference_values": reference_values_info(reference)})


def _calibration_info(reference: Reference, policy: DriftPolicy, layout: ChunkLayout | None) -> dict:
    """How the limits were obtained, for the report."""
    if not policy.calibrated:
        return {"method": "fixed", "note": "fixed thresholds (monitoring.method: fixed)"}
    if layout is None:
        why = ("the reference kept no rows in time order (fitted before format 2)"
               if reference.rows is None else "the reference is too small to be cut into chunks")
        return {"method": "fixed", "note": f"fixed thresholds: {why}"}
    ordered = "time order" if reference.rows.time is not None else "file order (no time column)"
    return {"method": "calibrated", "chunks": layout.n_chunks, "chunk_rows": layout.chunk_rows,
            "reference_rows": layout.total_rows, "order": ordered, "k": policy.drift_k,
            "thinned_every": reference.rows.step, "note": layout.note}


def _check_inputs(reference: Reference, current: pl.DataFrame, policy: DriftPolicy,
                  n_jobs: int | None) -> None:
    """Bins, overrides, columns and n_jobs agree; every feature's test is decidable."""
    if policy.n_bins != reference.n_bins:
        raise ConfigError(f"the policy asks for {policy.n_bins} bins but the reference was "
                          f"fitted with {reference.n_bins}", key="n_bins",
                          fix=f"refit the reference with n_bins={policy.n_bins}, or set "
                              f"n_bins={reference.n_bins}")
    unknown = sorted(set(policy.overrides) - set(reference.features))
    if unknown:
        hints = [f"{name!r}" + _did_you_mean(name, reference.features) for name in unknown]
        raise ConfigError(f"overrides name feature(s) {', '.join(hints)} that the reference "
                          f"does not have; it has {reference.features}", key="overrides",
                          fix="fix the feature name or refit the reference with that column")
    require_columns(current, reference.features, what="current data")
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1):
        raise ConfigError(f"The 'n_jobs' parameter must be an int >= 1 or None; got {n_jobs!r} "
                          f"instead", key="n_jobs")
    # Decide every feature's test first, so a bad override fails before any work.
    for name in reference.features:
        kind = "numeric" if name in reference.numeric else "categorical"
        ref_valid = (reference.numeric[name] if kind == "numeric" else reference.categorical[name]).valid
        policy.decide(name, kind, ref_valid)


def _all_features(reference: Reference, current: pl.DataFrame, policy: DriftPolicy,
                  progress: Callable[[int, int, str], None] | None,
                  n_jobs: int | None, layout: ChunkLayout | None) -> dict[str, dict]:
    """Every feature's statistics and verdict, in feature order, on a thread pool."""
    rows = reference.rows

    def one(name: str) -> dict:
        series = current.get_column(name)
        if name in reference.numeric:
            values = rows.numeric.get(name) if rows is not None and layout is not None else None
            shared = reference.numeric[name].sorted_values if (
                values is not None and reference.rows_hold_sorted(name)) else None
            return _numeric_feature(name, reference.numeric[name], series, policy,
                                    None if values is None else (values, layout, shared))
        codes = rows.categorical.get(name) if rows is not None and layout is not None else None
        return _categorical_feature(name, reference.categorical[name], series, policy,
                                    None if codes is None else (codes, layout))

    total = len(reference.features)
    workers = min(n_jobs or min(os.cpu_count() or 1, 8), max(total, 1))
    features: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (name, result) in enumerate(
                zip(reference.features, pool.map(one, reference.features)), start=1):
            features[name] = result
            if progress is not None:
                progress(done, total, name)
    return features


def _dataset_status(rows: int, total: int, n_undecided: int, drift_share: float,
                    policy: DriftPolicy) -> tuple[str, str]:
    if rows < policy.min_rows_dataset:
        return INSUFFICIENT, (f"{rows} current row(s); dataset drift needs >= "
                              f"{policy.min_rows_dataset} (min_rows_dataset)")
    if total == 0 or n_undecided == total:
        return INSUFFICIENT, ("no feature could be decided (too few valid values, or a reference "
                              "that varies more than the statistics can)")
    share = policy.share
    if share is None:
        if drift_share > 0:
            return DRIFT, f"features past their limits ({policy.family_rule})"
        return NO_DRIFT, f"no feature past its limit ({policy.family_rule})"
    if drift_share >= share:
        return DRIFT, f"drift share {drift_share:.0%} >= {share:.0%} (drift_share)"
    return NO_DRIFT, f"drift share {drift_share:.0%} < {share:.0%} (drift_share)"


def _numeric_feature(name: str, ref: NumericReference, series: pl.Series,
                     policy: DriftPolicy, calib: tuple[np.ndarray, ChunkLayout, np.ndarray | None] | None
                     ) -> dict:
    col = numeric_column(series)
    cur = col.sorted_values
    test, threshold = policy.decide(name, "numeric", ref.valid, cur.size)
    cur_counts = stats.bin_counts(cur, ref.edges, is_sorted=True)
    out = _base(test, threshold, "numeric")
    out.update(psi=None, js=None, ks_stat=None, ks_pvalue=None, wasserstein=None,
               ref_rows=ref.rows, cur_rows=col.rows, exact=not ref.subsampled,
               ref_null_share=_share(ref.nulls, ref.rows), cur_null_share=_share(col.nulls, col.rows),
               cur_nonfinite=col.nonfinite,
               hist={"edges": ref.edges.tolist(), "ref": _shares_list(ref.counts),
                     "cur": _shares_list(cur_counts)})
    notes = _empty_notes(ref.valid, col.rows, cur.size, col.nulls, col.nonfinite)
    if not notes:
        ref_shares, cur_shares = stats.shares(ref.counts), stats.shares(cur_counts)
        ks_stat, ks_pvalue, wasserstein = stats.ks_and_wasserstein(
            ref.sorted_values, cur, ref.std, ref_n=ref.valid)
        out.update(psi=stats.psi(ref_shares, cur_shares), js=stats.js_distance(ref_shares, cur_shares),
                   ks_stat=ks_stat, ks_pvalue=ks_pvalue, wasserstein=wasserstein)
        limit = _calibrated(name, policy, calib, notes, lambda values, layout, shared: numeric_limit(
            values, test=test, ref_std=ref.std, edges=ref.edges, layout=layout,
            k=policy.drift_k, floor=policy.floor(test, cur.size), all_sorted=shared))
        pvalue_score = ks_pvalue if limit is None else ks_stat  # a limit is on the statistic
        out["score"] = {"ks": pvalue_score, "wasserstein": wasserstein, "psi": out["psi"],
                        "js": out["js"]}[test]
        _decide(out, policy, ref_valid=ref.valid, cur_valid=cur.size, notes=notes, limit=limit)
        if ref.std is not None and ref.std < stats.WASSERSTEIN_STD_FLOOR:
            notes.append("reference is (nearly) constant: Wasserstein is divided by 1e-3")
    if col.nonfinite:
        notes.append(f"{col.nonfinite} NaN/inf value(s) in the current window were dropped")
    if out["score"] is None:  # nothing to decide on (empty window, no valid value)
        out["status"] = INSUFFICIENT
    out["quality"] = quality_issue(ref.rows, ref.rows - ref.valid, col.rows, col.rows - cur.size,
                                   min_rows=policy.min_rows_dataset,
                                   limit=_missing_limit(policy, calib, lambda v: ~np.isfinite(v),
                                                        (ref.rows - ref.valid) / max(ref.rows, 1)))
    out["note"] = "; ".join(notes) or None
    return out


def _categorical_feature(name: str, ref: CategoricalReference, series: pl.Series,
                         policy: DriftPolicy, calib: tuple[np.ndarray, ChunkLayout] | None) -> dict:
    col = categorical_column(series)
    categories = list(ref.categories)
    seen, unseen = category_counts(col.values, categories)
    cur_valid = col.values.len()
    test, threshold = policy.decide(name, "categorical", ref.valid, cur_valid)
    ref_bins = np.append(ref.counts, 0)
    cur_bins = np.append(seen, unseen)
    out = _base(test, threshold, "categorical")
    out.update(psi=None, js=None, chi2_stat=None, chi2_pvalue=None, unseen_share=None,
               ref_rows=ref.rows, cur_rows=col.rows,
               ref_null_share=_share(ref.nulls, ref.rows), cur_null_share=_share(col.nulls, col.rows),
               cur_nonfinite=0, hist=_categorical_hist(categories, ref_bins, cur_bins))
    notes = _empty_notes(ref.valid, col.rows, cur_valid, col.nulls, 0)
    if not notes:
        ref_shares, cur_shares = stats.shares(ref_bins), stats.shares(cur_bins)
        chi2_stat, chi2_pvalue = stats.chi2_gof(ref.counts, seen)
        if chi2_stat is None:
            notes.append("chi-square is undefined: it needs >= 2 reference categories and "
                         "current rows in them (unseen values are caught by PSI/JS)")
        out.update(psi=stats.psi(ref_shares, cur_shares), js=stats.js_distance(ref_shares, cur_shares),
                   chi2_stat=chi2_stat, chi2_pvalue=chi2_pvalue, unseen_share=unseen / cur_valid)
        rows_test = test
        if test == "chi2" and chi2_stat is None:
            # all-unseen (or single-category) windows: chi-square cannot decide, but such a
            # window is the strongest drift there is; let JS decide at its threshold
            test, threshold = "js", policy.thresholds["js"]
            out.update(test=test, threshold=threshold)
            notes.append("decided by Jensen-Shannon because chi-square is undefined here")
        limit = _calibrated(name, policy, calib, notes, lambda codes, layout: categorical_limit(
            codes, test=test, n_categories=len(categories), layout=layout,
            k=policy.drift_k, floor=policy.floor(test, cur_valid)))
        chi2_score = chi2_pvalue if limit is None else chi2_stat
        out["score"] = {"chi2": chi2_score, "psi": out["psi"], "js": out["js"]}[test]
        _decide(out, policy, ref_valid=ref.valid, cur_valid=cur_valid, notes=notes,
                rows_test=rows_test, limit=limit)
    if out["score"] is None:  # nothing to decide on (empty window, no valid value)
        out["status"] = INSUFFICIENT
    out["quality"] = quality_issue(ref.rows, ref.nulls, col.rows, col.nulls, min_rows=policy.min_rows_dataset,
                                   limit=_missing_limit(policy, calib, lambda c: c < 0,
                                                        ref.nulls / max(ref.rows, 1)))
    out["note"] = "; ".join(notes) or None
    return out


MOSTLY_MISSING = 0.5  # more than half the values missing is a broken input, not a shift
MISSING_JUMP = 0.1   # ... when at least 10 points more than the reference's share, and past its spread


def quality_issue(ref_rows: int, ref_missing: int, cur_rows: int, cur_missing: int, *,
                  min_rows: int = 0, limit: float | None = None) -> str | None:
    """A data-quality problem of a feature's current values, or None: no valid value at all
    (all null, NaN or inf), or mostly missing and past ``limit``: the missing share's own
    spread over reference chunks (:func:`_missing_limit`), at least the reference's share plus
    10 points. Windows of fewer than ``min_rows`` rows are too small to call either (a first
    event has no history).

    >>> quality_issue(100, 0, 50, 50), quality_issue(100, 45, 50, 27)
    ('no valid value in 50 rows (all null or NaN/inf)', None)
    >>> quality_issue(100, 5, 50, 30)
    'mostly missing: 60% of 50 rows null or NaN/inf (reference 5%, limit 15%)'
    """
    if cur_rows == 0 or cur_rows < min_rows:
        return None
    if cur_missing == cur_rows:
        return f"no valid value in {cur_rows} rows (all null or NaN/inf)"
    share, ref_share = cur_missing / cur_rows, (ref_missing / ref_rows if ref_rows else 0.0)
    limit = max(ref_share + MISSING_JUMP, limit or 0.0)
    if share > MOSTLY_MISSING and share > limit:
        return (f"mostly missing: {share:.0%} of {cur_rows} rows null or NaN/inf "
                f"(reference {ref_share:.0%}, limit {limit:.0%})")
    return None


def _missing_limit(policy: DriftPolicy, calib, is_missing, ref_share: float) -> float | None:
    """mean + k sd of the missing share over the reference chunks, when it can be measured."""
    if calib is None or not policy.calibrated:
        return None
    values, layout = calib[:2]
    limit = missing_limit(is_missing(values), layout=layout, k=policy.std_multiplier,
                          floor=ref_share + MISSING_JUMP)
    return None if limit is None else limit.threshold


def _base(test: str, threshold: float, kind: str) -> dict:
    return {"type": kind, "test": test, "threshold": threshold, "status": NO_DRIFT,
            "drift": False, "score": None, "limit": None, "quality": None,
            "limit_text": f"{test} {'<' if test in ('ks', 'chi2') else '>='} {threshold:g} (fixed)"}


def _calibrated(name: str, policy: DriftPolicy, calib, notes: list[str], compute) -> Limit | None:
    """The calibrated limit of a feature, or None (fixed threshold; the note says why)."""
    if policy.is_fixed(name):
        return None
    if calib is None:
        notes.append("fixed threshold: the reference kept no rows in time order to calibrate on")
        return None
    limit = compute(*calib)
    if limit is None:
        notes.append("fixed threshold: too few reference values to measure their spread")
    return limit


def _decide(out: dict, policy: DriftPolicy, *, ref_valid: int, cur_valid: int,
            notes: list[str], rows_test: str | None = None, limit: Limit | None = None) -> None:
    """Set ``status`` and ``drift`` from the score, unless the samples are too small.

    ``rows_test`` names the test whose minimum applies when another test stands in for it.
    With a calibrated ``limit`` the score is judged against it (drift when past it).
    """
    if limit is not None:
        family = policy.family_rule if policy.any_feature and policy.family_size > 1 else None
        out.update(threshold=limit.threshold, limit=limit.to_dict(), limit_text=limit.describe(family))
    why = policy.sufficient(rows_test or out["test"], ref_valid=ref_valid, cur_valid=cur_valid)
    if why is not None:
        out.update(status=INSUFFICIENT, drift=False)
        notes.insert(0, f"insufficient data: {why}; statistics shown, no decision")
        return
    if limit is not None and limit.unreachable:
        out.update(status=UNJUDGEABLE, drift=False)
        notes.insert(0, f"cannot be judged against this reference: its own chunks differ so much that the "
                        f"limit ({limit.threshold:.3g}) is past the most {limit.statistic} can reach "
                        f"({STATISTIC_MAX[limit.statistic]:g}); compare with a period like the current one "
                        "(monitoring.reference: {previous: N} or {start: ..., end: ...}) for data with "
                        "trends or seasons")
        return
    if limit is not None:
        out["drift"] = limit.breached(out["score"])
    else:
        out["drift"] = is_drift(out["test"], out["score"], out["threshold"])
    out["status"] = DRIFT if out["drift"] else NO_DRIFT


def _empty_notes(ref_valid: int, cur_rows: int, cur_valid: int, cur_nulls: int,
                 cur_nonfinite: int) -> list[str]:
    if ref_valid == 0:
        return ["reference has no valid (non-null, finite) value: statistics are undefined"]
    if cur_rows == 0:
        return ["current window is empty (0 rows): statistics are undefined"]
    if cur_valid == 0:
        return [f"current window has no valid value ({cur_nulls} null, {cur_nonfinite} "
                f"NaN/inf): statistics are undefined"]
    return []


def _categorical_hist(categories: list[str], ref_bins: np.ndarray, cur_bins: np.ndarray) -> dict:
    k = len(categories)
    if k + 1 <= HIST_MAX_CATEGORIES:
        labels, ref_h, cur_h = [*categories, UNSEEN_LABEL], ref_bins, cur_bins
    else:
        # Keep the most frequent reference categories; the rest share one "<other>" bar.
        top = np.sort(np.argsort(-ref_bins[:k], kind="stable")[:HIST_MAX_CATEGORIES - 2])
        rest = np.setdiff1d(np.arange(k), top)
        labels = [categories[i] for i in top] + [OTHER_LABEL, UNSEEN_LABEL]
        ref_h = np.concatenate((ref_bins[top], [ref_bins[rest].sum(), ref_bins[k]]))
        cur_h = np.concatenate((cur_bins[top], [cur_bins[rest].sum(), cur_bins[k]]))
    return {"categories": labels, "ref": _shares_list(ref_h), "cur": _shares_list(cur_h)}


def _shares_list(counts: np.ndarray) -> list[float]:
    # An empty side is drawn as zero bars; its statistics are None with a note.
    s = stats.shares(counts)
    return np.zeros(len(counts)).tolist() if s is None else s.tolist()


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _did_you_mean(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _json_safe(value: object) -> object:
    """Plain Python values only; NaN/inf become None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value
