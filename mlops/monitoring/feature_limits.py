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
>>> values = rng.normal(size=60_000)
>>> ref_std = float(values.std())
>>> limit = numeric_limit(values, test="wasserstein", ref_std=ref_std, edges=np.array([0.0]),
...                       layout=chunk_layout(60_000, 5000), k=3.0, floor=0.1)
>>> limit.source, limit.chunks    # noise of 5000-row chunks is below the 0.1 sd floor
('floor', 12)
"""
from __future__ import annotations

import numpy as np

from mlops.monitoring import stats
from mlops.monitoring.calibration import ChunkLayout, Limit, chunk_values, upper_limit
from mlops.monitoring.chunk_stats import SortedWhole, ks_to_whole, wasserstein_to_whole

DEFAULT_FLOORS = {"wasserstein": 0.1, "ks": 0.1, "psi": 0.1, "js": 0.1, "chi2": 0.1}


def chi2_floor(cohens_w: float, n: int) -> float:
    """The chi-square statistic of effect size ``w`` on ``n`` values: ``w**2 * n``."""
    return cohens_w ** 2 * n


def numeric_limit(values: np.ndarray, *, test: str, ref_std: float | None, edges: np.ndarray,
                  layout: ChunkLayout, k: float, floor: float | None,
                  all_sorted: np.ndarray | None = None) -> Limit | None:
    """The calibrated limit of ``test`` for a numeric feature whose reference values in time
    order are ``values`` (NaN for null/non-finite); None when no spread can be measured.

    ``all_sorted``: the finite ``values`` sorted, when the caller holds them (the reference's
    sorted values when its rows are complete); sorted here otherwise. Each chunk is sorted
    (numpy's vectorised sort beats binary-searching unsorted values into the bins) and costs
    ``O(n log N)`` against the whole (:mod:`mlops.monitoring.chunk_stats`).
    """
    finite = np.isfinite(values)
    total = int(finite.sum())
    if total < 4:
        return None
    whole = SortedWhole(np.sort(values[finite]) if all_sorted is None else all_sorted)
    if test in ("psi", "js"):
        all_counts = stats.bin_counts(whole.values, edges, is_sorted=True)

        def binned(chunk: np.ndarray, n: int) -> float | None:
            counts = stats.bin_counts(chunk, edges, is_sorted=True)
            return _binned(test, all_counts - counts, counts)
        return _chunk_limit(values, test, layout, k, floor, total, binned)
    std = float(ref_std) if ref_std is not None else float(whole.values.std())

    def against_rest(chunk: np.ndarray, n: int) -> float:
        # against the rest of the reference: the ECDF difference scales by N / (N - n)
        scale = total / (total - n)
        if test == "ks":
            return scale * ks_to_whole(whole, chunk)
        return scale * wasserstein_to_whole(whole, chunk) / max(std, stats.WASSERSTEIN_STD_FLOOR)
    return _chunk_limit(values, test, layout, k, floor, total, against_rest)


def _chunk_limit(values: np.ndarray, test: str, layout: ChunkLayout, k: float, floor: float | None,
                 total: int, statistic) -> Limit | None:
    """``statistic(sorted finite chunk values, their count)`` over the chunks, as an upper limit."""
    def one(rows: slice) -> float | None:
        chunk = np.sort(values[rows])  # NaN (null, non-finite) sorts last
        chunk = chunk[:int(np.count_nonzero(np.isfinite(chunk)))]
        n = chunk.size
        if n < 2 or total - n < 2:
            return None
        return statistic(chunk, n)
    return upper_limit(chunk_values(layout, one), k=k, floor=floor, statistic=test, layout=layout)


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
