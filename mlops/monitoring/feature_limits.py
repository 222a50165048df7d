"""Calibrated drift limits per feature: the statistic over reference chunks of the window's size.

For a numeric feature each chunk of the time-ordered reference is compared with the rest
of the reference by the feature's deciding statistic (normed Wasserstein, KS statistic,
PSI or Jensen-Shannon on the reference bins); for a categorical feature by JS, PSI or the
chi-square statistic on the reference categories. The limit is ``mean + k * std`` of those
values, never below the statistic's effect-size floor (:data:`DEFAULT_FLOORS`): a change
smaller than that is not worth an alert however certain it is.

The floors are conventional effect sizes, the same on any data: a tenth of a standard
deviation for Wasserstein (half of Cohen's "small" d for a shift in the mean), 0.1 for the
KS statistic, PSI (the usual "slight change" line) and the JS distance, and Cohen's w = 0.1
("small") for chi-square, i.e. a statistic of ``0.01 * n`` on ``n`` current values.

>>> import numpy as np
>>> from mlops.monitoring.calibration import chunk_layout
>>> rng = np.random.default_rng(0)
>>> values = rng.normal(size=6000)
>>> ref_std = float(values.std())
>>> limit = numeric_limit(values, test="wasserstein", ref_std=ref_std, edges=np.array([0.0]),
...                       layout=chunk_layout(6000, 1000), k=3.0, floor=0.1)
>>> limit.source, limit.chunks    # noise of 1000-row chunks is below the 0.1 sd floor
('floor', 6)
"""
from __future__ import annotations

import numpy as np

from mlops.monitoring import stats
from mlops.monitoring.calibration import ChunkLayout, Limit, chunk_values, upper_limit

DEFAULT_FLOORS = {"wasserstein": 0.1, "ks": 0.1, "psi": 0.1, "js": 0.1, "chi2": 0.1}


def chi2_floor(cohens_w: float, n: int) -> float:
    """The chi-square statistic of effect size ``w`` on ``n`` values: ``w**2 * n``."""
    return cohens_w ** 2 * n


def numeric_limit(values: np.ndarray, *, test: str, ref_std: float | None, edges: np.ndarray,
                  layout: ChunkLayout, k: float, floor: float | None) -> Limit | None:
    """The calibrated limit of ``test`` for a numeric feature whose reference values in time
    order are ``values`` (NaN for null/non-finite); None when no spread can be measured."""
    finite = np.isfinite(values)
    all_sorted = np.sort(values[finite])
    total = all_sorted.size
    if total < 4:
        return None
    all_counts = stats.bin_counts(all_sorted, edges, is_sorted=True) if test in ("psi", "js") else None
    std = float(ref_std) if ref_std is not None else float(all_sorted.std())

    def statistic(rows: slice) -> float | None:
        chunk = values[rows]
        chunk = np.sort(chunk[np.isfinite(chunk)])
        n = chunk.size
        if n < 2 or total - n < 2:
            return None
        if test in ("psi", "js"):
            counts = stats.bin_counts(chunk, edges, is_sorted=True)
            return _binned(test, all_counts - counts, counts)
        # against the rest of the reference: the ECDF difference scales by N / (N - n)
        scale = total / (total - n)
        if test == "ks":
            return scale * stats.ks_statistic_from_sorted(all_sorted, chunk, cur_is_sorted=True)
        return scale * stats.wasserstein_from_sorted(all_sorted, chunk, std, cur_is_sorted=True)

    return upper_limit(chunk_values(layout, statistic), k=k, floor=floor, statistic=test, layout=layout)


def categorical_limit(codes: np.ndarray, *, test: str, n_categories: int, layout: ChunkLayout,
                      k: float, floor: float | None) -> Limit | None:
    """The calibrated limit of ``test`` for a categorical feature coded ``codes`` in time
    order (0..n_categories-1, -1 for null); None when no spread can be measured."""
    valid = codes[codes >= 0]
    if valid.size < 4:
        return None
    all_counts = np.bincount(valid, minlength=n_categories).astype(np.int64)

    def statistic(rows: slice) -> float | None:
        chunk = codes[rows]
        chunk = chunk[chunk >= 0]
        if chunk.size < 2 or valid.size - chunk.size < 2:
            return None
        counts = np.bincount(chunk, minlength=n_categories).astype(np.int64)
        rest = all_counts - counts
        if test == "chi2":
            stat, _ = stats.chi2_gof(rest, counts)
            return stat
        return _binned(test, rest, counts)

    return upper_limit(chunk_values(layout, statistic), k=k, floor=floor, statistic=test, layout=layout)


def missing_limit(missing: np.ndarray, *, layout: ChunkLayout, k: float, floor: float) -> Limit | None:
    """The calibrated limit of the share of missing values (``missing``: a boolean mask of the
    reference rows in time order), never below ``floor``."""
    return upper_limit(chunk_values(layout, lambda rows: float(missing[rows].mean()) if missing[rows].size else None),
                       k=k, floor=floor, statistic="missing share", layout=layout)


def _binned(test: str, ref_counts: np.ndarray, cur_counts: np.ndarray) -> float | None:
    ref_shares, cur_shares = stats.shares(ref_counts), stats.shares(cur_counts)
    if ref_shares is None or cur_shares is None:
        return None
    if test == "psi":
        return stats.psi(ref_shares, cur_shares)
    return stats.js_distance(ref_shares, cur_shares)
