"""Drift statistics as pure functions on numpy arrays.

Every function here has exact, documented semantics and is tested against scipy:

* bins: inner edges are ``numpy.quantile(ref, k / n_bins)`` for ``k = 1..n_bins-1``
  (duplicates dropped); bins are closed on the left ``[e_i, e_i+1)`` and the outer
  bins are open to -inf / +inf.
* PSI: ``sum((c - r) * ln(c / r))`` over bin shares, each share floored at 1e-4.
* Jensen-Shannon distance, base 2, no floor (= ``scipy.spatial.distance.jensenshannon``).
* KS: the two-sample statistic and p-value of ``scipy.stats.ks_2samp`` (two-sided,
  ``method='auto'``), computed from a pre-sorted reference without calling scipy per column.
* Wasserstein: ``scipy.stats.wasserstein_distance(ref, cur) / max(std_ref, 1e-3)``.
* chi-square goodness of fit, as ``scipy.stats.chisquare``.

Inputs are expected to be finite (callers drop NaN/inf first and count them).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from mlops.monitoring.kolmogorov import kstwo_sf

# scipy.stats is imported only for the exact KS p-value of samples up to 10,000 rows (and by
# kstwo_sf for its rare cases): it takes ~0.35 s to load, longer than a drift check on a small
# file; the distributions used here are scipy.stats' own scipy.special functions.

PSI_FLOOR = 1e-4
WASSERSTEIN_STD_FLOOR = 1e-3
# scipy's ks_2samp(method='auto') is exact while both samples have at most this many rows.
KS_EXACT_MAX_N = 10_000
# Below this asymptotic p-value the exact p-value (which can take ~0.5 s on samples of
# thousands) is skipped: with both samples above KS_SHORTCUT_MIN_N rows the asymptotic
# value is within a factor ~2 there, and no decision depends on it.
KS_ASYMPTOTIC_BELOW = 1e-13
KS_SHORTCUT_MIN_N = 1_000


def numeric_edges(ref: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges: ``numpy.quantile(ref, k / n_bins)``, k = 1..n_bins-1, deduplicated.

    ``ref`` must hold finite values; an empty ``ref`` gives no edges (one bin).

    >>> numeric_edges(np.arange(11.0), n_bins=2)
    array([5.])
    """
    ref = np.asarray(ref, dtype=np.float64)
    if ref.size == 0 or n_bins < 2:
        return np.empty(0, dtype=np.float64)
    qs = np.arange(1, n_bins) / n_bins
    return np.unique(np.quantile(ref, qs))


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: 0 for ``(-inf, e_0)``, i for ``[e_(i-1), e_i)``, ``len(edges)``
    for ``[e_last, +inf)`` (values must be finite).

    >>> bin_index(np.array([0.0, 1.0, 1.5, 2.0]), np.array([1.0, 2.0]))
    array([0, 1, 1, 2])
    """
    return np.searchsorted(np.asarray(edges, dtype=np.float64),
                           np.asarray(values, dtype=np.float64), side="right")


def bin_counts(values: np.ndarray, edges: np.ndarray, *, is_sorted: bool = False) -> np.ndarray:
    """Counts per bin ``(-inf, e_0), [e_0, e_1), ..., [e_last, +inf)``; length ``len(edges) + 1``.

    With ``is_sorted=True`` the counts come from ``len(edges)`` binary searches instead of
    a pass over every value.

    >>> bin_counts(np.array([0.0, 1.0, 1.0, 2.5]), np.array([1.0, 2.0]))
    array([1, 2, 1])
    """
    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if is_sorted:
        pos = np.searchsorted(values, edges, side="left")
        return np.diff(np.concatenate(([0], pos, [values.size]))).astype(np.int64)
    idx = bin_index(values, edges)
    return np.bincount(idx, minlength=edges.size + 1).astype(np.int64)


def shares(counts: np.ndarray) -> np.ndarray | None:
    """Counts divided by their total; None when the total is 0 (no data, no distribution)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return None
    return counts / total


def psi(ref_shares: np.ndarray, cur_shares: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index over bin shares, each share floored at ``floor``.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.7, 0.3])), 5)  # 0.2 ln(1.4) - 0.2 ln(0.6)
    0.16946
    """
    r = np.maximum(np.asarray(ref_shares, dtype=np.float64), floor)
    c = np.maximum(np.asarray(cur_shares, dtype=np.float64), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance in base 2 (0..1), no floor; equals scipy's ``jensenshannon``.

    >>> js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    1.0
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    js = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / np.log(2.0)
    # Rounding can leave a tiny negative (identical inputs) or 1 + eps: clip to the range.
    return float(np.sqrt(min(max(js / 2.0, 0.0), 1.0)))


def ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """Two-sided p-value of the two-sample KS statistic, as ``scipy.stats.ks_2samp``.

    Returns ``(statistic, pvalue)``: in the exact regime scipy rounds the statistic to a
    multiple of ``1 / lcm(n1, n2)``, and so does this function. Exact when both samples
    have at most 10,000 rows, otherwise ``kstwo.sf(d, round(n1*n2/(n1+n2)))`` as scipy.
    Below an asymptotic p-value of 1e-13 the asymptotic value is returned instead of the
    slow exact one (both samples over 1,000 rows; within a factor ~2, no decision depends on it).
    """
    d = float(d)
    m, n = sorted((float(n1), float(n2)), reverse=True)
    en = int(np.round(m * n / (m + n)))
    asymptotic = _clip01(special.kolmogorov(d * math.sqrt(en)))  # scipy.stats.kstwobign.sf
    shortcut = min(n1, n2) > KS_SHORTCUT_MIN_N and asymptotic < KS_ASYMPTOTIC_BELOW
    if max(n1, n2) > KS_EXACT_MAX_N:
        return d, asymptotic if shortcut else kstwo_sf(d, en)
    g = math.gcd(int(n1), int(n2))
    lcm = (int(n1) // g) * int(n2)
    h = int(np.round(d * lcm))
    d = h * 1.0 / lcm
    if h == 0:
        return d, 1.0
    if shortcut:
        return d, asymptotic
    try:  # scipy's own exact two-sample routine; the public fallback otherwise
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - depends on the scipy version
        return d, kstwo_sf(d, en)
    success, d, prob = _attempt_exact_2kssamp(int(n1), int(n2), g, d, "two-sided")
    if not success:  # scipy falls back to the asymptotic distribution too
        return float(d), kstwo_sf(d, en)
    return float(d), _clip01(prob)


def ks_from_sorted(ref_sorted: np.ndarray, cur: np.ndarray, *, cur_is_sorted: bool = False,
                   ref_n: int | None = None) -> tuple[float, float]:
    """KS statistic and p-value of ``scipy.stats.ks_2samp(ref, cur)`` from a sorted reference.

    ``ref_n`` is the true reference size when ``ref_sorted`` is a subsample (it only
    changes the p-value). Both inputs must be non-empty and finite.

    >>> ks_from_sorted(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0]))
    (1.0, 0.2)
    """
    merged, diff = _merged_ecdf_diff(np.asarray(ref_sorted, np.float64), _sorted(cur, cur_is_sorted))
    return ks_pvalue(_ks_statistic(merged, diff), ref_n or len(ref_sorted), len(cur))


def wasserstein_from_sorted(ref_sorted: np.ndarray, cur: np.ndarray, ref_std: float, *,
                            cur_is_sorted: bool = False) -> float:
    """``scipy.stats.wasserstein_distance(ref, cur) / max(ref_std, 1e-3)`` from a sorted reference.

    The distance is the integral of ``|F_ref - F_cur|`` over the pooled sorted support.

    >>> wasserstein_from_sorted(np.array([0.0, 1.0]), np.array([1.0, 2.0]), ref_std=0.5)
    2.0
    """
    merged, diff = _merged_ecdf_diff(np.asarray(ref_sorted, np.float64), _sorted(cur, cur_is_sorted))
    return _wasserstein(merged, diff) / max(float(ref_std), WASSERSTEIN_STD_FLOOR)


def ks_statistic_from_sorted(ref_sorted: np.ndarray, cur: np.ndarray, *, cur_is_sorted: bool = False) -> float:
    """The two-sample KS statistic alone (``scipy.stats.ks_2samp(ref, cur).statistic``, unrounded).

    >>> ks_statistic_from_sorted(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3.5, 4.5]))
    0.75
    """
    merged, diff = _merged_ecdf_diff(np.asarray(ref_sorted, np.float64), _sorted(cur, cur_is_sorted))
    return _ks_statistic(merged, diff)


def ks_and_wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray, ref_std: float, *,
                       ref_n: int | None = None) -> tuple[float, float, float]:
    """``(ks_stat, ks_pvalue, normed_wasserstein)`` from one merge of two sorted samples.

    This is what drift detection calls: both statistics share the pooled ECDFs.
    """
    merged, diff = _merged_ecdf_diff(ref_sorted, cur_sorted)
    stat, pvalue = ks_pvalue(_ks_statistic(merged, diff), ref_n or len(ref_sorted), len(cur_sorted))
    wasserstein = _wasserstein(merged, diff) / max(float(ref_std), WASSERSTEIN_STD_FLOOR)
    return stat, pvalue, wasserstein


def chi2_gof(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float | None, float | None]:
    """Chi-square goodness of fit of current counts against reference proportions.

    ``cur_counts`` holds the current counts of the reference categories only (unseen
    categories are excluded by the caller). Expected = reference proportions x the number
    of current rows in reference categories, as ``scipy.stats.chisquare(cur, expected)``
    with ``k - 1`` degrees of freedom. Returns ``(None, None)`` when the test is undefined
    (fewer than 2 reference categories, or no current rows in them).

    >>> stat, p = chi2_gof(np.array([50, 50]), np.array([70, 30]))
    >>> stat, round(p, 7)
    (16.0, 6.33e-05)
    """
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    if ref.size < 2 or ref.sum() <= 0 or cur.sum() <= 0:
        return None, None
    expected = ref / ref.sum() * cur.sum()
    keep = expected > 0
    stat = float(np.sum((cur[keep] - expected[keep]) ** 2 / expected[keep]))
    return stat, chi2_sf(stat, int(keep.sum()) - 1)


def chi2_sf(x: float, df: int) -> float:
    """``scipy.stats.chi2.sf(x, df)``: its ``scipy.special.chdtrc`` with its edge cases
    (1 at ``x <= 0``, NaN for ``df < 1``).

    >>> round(chi2_sf(3.841458820694124, 1), 12)  # the 5% critical value of one degree of freedom
    0.05
    """
    if not df > 0:
        return math.nan
    return 1.0 if x <= 0 else float(special.chdtrc(df, x))


def _sorted(values: np.ndarray, is_sorted: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values if is_sorted else np.sort(values)


def _merged_ecdf_diff(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pooled sorted values and ``F_ref - F_cur`` after each pooled value.

    A stable argsort of the concatenation merges the two sorted runs in linear time
    (timsort) and tells which sample each pooled value came from; the ECDFs are then
    cumulative counts divided by the sample sizes, the same float operations as scipy.
    Inside a run of ties the values are partial; only the last of each run is an ECDF value.
    """
    n1, n2 = ref_sorted.size, cur_sorted.size
    pooled = np.concatenate((ref_sorted, cur_sorted))
    order = np.argsort(pooled, kind="stable")
    merged = np.take(pooled, order)
    ref_count = np.cumsum(order < n1)
    # In place, fewer temporaries; the same float values as count / n.
    cur_share = np.arange(1, n1 + n2 + 1, dtype=np.float64)
    cur_share -= ref_count
    cur_share /= n2
    diff = ref_count / n1
    diff -= cur_share
    return merged, diff


def _ks_statistic(merged: np.ndarray, diff: np.ndarray) -> float:
    last_of_ties = np.empty(merged.size, dtype=bool)
    np.not_equal(merged[1:], merged[:-1], out=last_of_ties[:-1])
    last_of_ties[-1] = True
    values = diff if last_of_ties.all() else diff[last_of_ties]
    max_s = float(values.max())
    min_s = float(np.clip(-values.min(), 0.0, 1.0))
    return max(max_s, min_s)


def _wasserstein(merged: np.ndarray, diff: np.ndarray) -> float:
    # Partial ECDF values inside tie runs meet a zero-width interval, so they add nothing.
    # np.sum of the products, as scipy: np.dot goes to the BLAS, whose threads can take
    # ~10-50 ms per call on a loaded machine for what takes 0.1 ms on one core.
    return float(np.sum(np.multiply(np.abs(diff[:-1]), np.diff(merged))))


def _clip01(p: float) -> float:
    return float(min(max(float(p), 0.0), 1.0))
