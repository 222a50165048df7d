"""The circuit breaker's limits, calibrated on the model's reference like monitoring's.

A PSI computed on a few hundred live records is noisy, and more so on data whose periods
differ (seasons, trends): a fixed limit borrowed from elsewhere either trips on noise or
never trips. Here each monitored column (every feature and the score) gets, for a window
of ``size`` records, the limit ``max(mean + m * std, floor)`` (``m``: the 3-sigma prediction
interval for one new chunk, :func:`mlops.monitoring.calibration.interval_multiplier`) of its PSI over consecutive
chunks of the reference's rows in time order (each chunk against the rest of the
reference, :mod:`mlops.monitoring.calibration`), as monitoring's drift limits: a shift must
exceed the reference's own chunk-to-chunk variation AND the effect-size floor (0.1 for PSI,
monitoring's :data:`~mlops.monitoring.feature_limits.DEFAULT_FLOORS`).

Limits are calibrated for window sizes ``W, W/2, W/4, ...`` (while a chunk holds at least
5 records per bin of the widest column, the usual minimum for a binned statistic), because a
window may hold fewer than ``W`` records (it is filling, or few entities are active and each
keeps at most its share). The breaker judges a window of ``n`` records with the limits of the
largest size not above ``n`` (a smaller chunk varies more: conservative), and is **armed**
once it holds ``min_records``: the smallest size at which the score's limit is its floor,
i.e. the reference's own noise at that size is below the effect worth pausing for; when no
size gets there, the full window. Chunks are contiguous slices of the reference (no
per-entity cap), which varies at least as much as the capped live window: conservative too.

With ``serving.breaker.reference: previous`` the live window is compared with the window of
traffic before it, so each level's limit is calibrated on the PSI between CONSECUTIVE chunks
of the reference's rows of that size (chunk i against chunk i-1, every chunk: a slow change
such as a season moves consecutive chunks little, an abrupt one a lot), with the same
multiplier, floor, levels and arming rule (:func:`consecutive_psis`).

The window itself (``serving.breaker.window: null``, the default) is calibrated by the same
rule that arms the breaker (:func:`choose_window`): the smallest of 125, 250, 500, 1,000, ...
records at which the score's limit is within the effect floor, i.e. the reference's own
windows of that size, at 3 sigma, differ from it by less than the effect worth pausing for.
A shorter window varies by itself more than that (one day of traffic, when the weather makes
days differ): it trips on a stormy day, or, where the reference holds such days, its limits
are so wide that it misses a real shift. Past the largest size the reference can calibrate
(six windows of it), that largest size, noted.

A reference without its rows in time order (registered before calibrated thresholds)
cannot be calibrated: :func:`calibrate` returns None and the breaker keeps the fixed limits
it had (:data:`LEGACY_PSI`, armed at :data:`LEGACY_MIN_RECORDS`), saying so.

Example:
    >>> limits = calibrate(bins, fitted.rows, window=500)          # doctest: +SKIP
    >>> limits.min_records, limits.at(320).score.threshold       # doctest: +SKIP
    (250, 0.1)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mlops.errors import ConfigError
from mlops.monitoring.calibration import (
    DEFAULT_MAX_CHUNKS,
    DEFAULT_MIN_CHUNKS,
    DEFAULT_STD_MULTIPLIER,
    Limit,
    chunk_layout,
    upper_limit,
)
from mlops.monitoring.feature_limits import DEFAULT_FLOORS
from mlops.monitoring.reference import Reference
from mlops.monitoring.reference_rows import ReferenceRows
from mlops.monitoring.stats import psi
from mlops.serving.breaker.bins import PREDICTION, SHARE_FLOOR, BreakerReference

PSI_FLOOR = DEFAULT_FLOORS["psi"]
PER_BIN = 5                 # records per bin a chunk needs for its PSI to mean something
LEGACY_PSI = 0.25           # the fixed limits of references that cannot be calibrated
LEGACY_MIN_RECORDS = 200
LEGACY_WINDOW = 500         # the window of references that cannot be calibrated
WINDOW_BASE = 125           # calibrated windows are WINDOW_BASE x 2^k records
LEGACY_NOTE = ("fixed limits (PSI 0.25, armed at 200 records): the model's reference has no "
               "rows in time order to calibrate on; retrain to calibrate")


@dataclass(frozen=True)
class LevelLimits:
    """The limits of a window of ``size`` records: per feature and for the score."""

    size: int
    score: Limit | None
    features: dict[str, Limit]

    def as_dict(self) -> dict:
        return {"size": self.size,
                "score": None if self.score is None else self.score.to_dict(),
                "features": {n: lim.to_dict() for n, lim in self.features.items()}}


@dataclass(frozen=True)
class BreakerLimits:
    """Calibrated limits per window size (ascending) and the size the breaker arms at."""

    levels: tuple[LevelLimits, ...]
    min_records: int
    note: str | None = None
    reference: str = "training"   # what they judge: the training reference or the window before
    window: int | None = None     # the window they were calibrated for
    window_note: str | None = None  # how that window was chosen (None: set in the config)

    def at(self, records: int) -> LevelLimits | None:
        """The limits for a window of ``records``: the largest size not above it."""
        fitting = [lv for lv in self.levels if lv.size <= records]
        return fitting[-1] if fitting else None

    def as_dict(self) -> dict:
        return {"min_records": self.min_records, "note": self.note, "reference": self.reference,
                "window": self.window, "window_note": self.window_note,
                "levels": [lv.as_dict() for lv in self.levels]}

    @classmethod
    def from_dict(cls, data: dict) -> "BreakerLimits":
        def limit(d):
            return None if d is None else Limit(**d)
        return cls(tuple(LevelLimits(lv["size"], limit(lv["score"]),
                                     {n: limit(d) for n, d in lv["features"].items()})
                         for lv in data["levels"]), int(data["min_records"]), data.get("note"),
                   data.get("reference", "training"), data.get("window"), data.get("window_note"))


def column_bins(bins, rows: ReferenceRows) -> np.ndarray | None:
    """The breaker bin of every reference row of one column (-1: no value), or None when the
    rows do not hold the column. ``bins`` is a :class:`~mlops.serving.breaker.bins.FeatureBins`
    (categories in the reference's order, as the rows' codes are)."""
    if bins.edges is not None:
        values = rows.numeric.get(bins.name)
        return None if values is None else bins.bin(values).astype(np.int64)
    codes = rows.categorical.get(bins.name)
    return None if codes is None else codes.astype(np.int64)


def chunk_psis(idx: np.ndarray, n_bins: int, layout) -> list[float]:
    """PSI of each chunk of ``layout`` against the rest of the reference (rows with -1 are
    dropped, as in the live window)."""
    all_counts = np.bincount(idx[idx >= 0], minlength=n_bins)
    out = []
    for rows in layout.slices():
        chunk = idx[rows]
        counts = np.bincount(chunk[chunk >= 0], minlength=n_bins)
        rest = all_counts - counts
        if counts.sum() >= 2 and rest.sum() >= 2:
            out.append(psi(rest / rest.sum(), counts / counts.sum()))
    return out


def consecutive_psis(idx: np.ndarray, n_bins: int, layout) -> list[float]:
    """PSI of each chunk of ``layout`` against the chunk before it (rows with -1 dropped, as in
    the live windows; a pair with fewer than 2 values on a side is skipped): what
    ``reference: previous`` sees, the live window against the window before it."""
    chunk_of = np.full(idx.size, -1, dtype=np.int64)
    for i, rows in enumerate(layout.slices()):
        chunk_of[rows] = i
    keep = (idx >= 0) & (chunk_of >= 0)
    n = layout.n_chunks
    counts = np.bincount(chunk_of[keep] * n_bins + idx[keep],
                         minlength=n * n_bins).reshape(n, n_bins)
    totals = counts.sum(axis=1)
    shares = np.maximum(counts / np.maximum(totals, 1)[:, None], SHARE_FLOOR)
    before, now = shares[:-1], shares[1:]
    found = ((now - before) * np.log(now / before)).sum(axis=1)
    ok = (totals[:-1] >= 2) & (totals[1:] >= 2)
    return found[ok].tolist()


def consecutive_layout(total_rows: int, size: int):
    """Every whole chunk of ``size`` consecutive rows (so chunk i follows chunk i-1), at least
    ``DEFAULT_MIN_CHUNKS`` pairs (else smaller chunks, noted as ``chunk_layout`` does)."""
    least = DEFAULT_MIN_CHUNKS + 1
    return chunk_layout(total_rows, size, min_chunks=least,
                        max_chunks=max(total_rows // max(size, 1), least))


def window_sizes(window: int, widest_bins: int) -> list[int]:
    """``window, window/2, ...`` while a window holds :data:`PER_BIN` records per bin (at
    least ``window`` itself), ascending."""
    sizes, size = [], int(window)
    while size >= PER_BIN * widest_bins or not sizes:
        sizes.append(size)
        size //= 2
    return sorted(sizes)


def calibrate(bins, rows: ReferenceRows | None, *, window: int | None,
              k: float = DEFAULT_STD_MULTIPLIER, floor: float = PSI_FLOOR,
              reference: str = "training") -> BreakerLimits | None:
    """Limits of every column of ``bins`` (a :class:`~mlops.serving.breaker.bins.BreakerReference`)
    for the window sizes of :func:`window_sizes`; None without rows to calibrate on.
    ``window`` None: chosen by :func:`choose_window`. ``reference``: "training" (each chunk
    against the rest of the reference) or "previous" (each chunk against the one before it)."""
    if rows is None or rows.rows < 2 * DEFAULT_MIN_CHUNKS:
        return None
    previous = reference == "previous"
    statistic = consecutive_psis if previous else chunk_psis
    columns = {b.name: (b, column_bins(b, rows)) for b in bins.features}
    # the score's values are the reference's prediction column
    score_idx = column_bins(replace(bins.score, name=PREDICTION), rows)
    widest = max(b.n_bins for b in (*bins.features, bins.score))
    window_note = None
    if window is None:
        window, window_note = choose_window(score_idx, bins.score.n_bins, rows.rows, widest=widest,
                                            k=k, floor=floor, previous=previous)
    levels, notes = [], []
    for size in window_sizes(window, widest):
        layout = _layout(rows.rows, size, previous)
        if layout is None:
            continue
        if layout.note:
            notes.append(layout.note)
        feats = {n: lim for n, (b, idx) in columns.items()
                 if (lim := _column_limit(b, idx, n, layout, k, floor, statistic)) is not None}
        levels.append(LevelLimits(size, _column_limit(bins.score, score_idx, "the score", layout,
                                                      k, floor, statistic), feats))
    if not levels:
        return None
    at_floor = [lv.size for lv in levels if lv.score is not None and lv.score.source == "floor"]
    return BreakerLimits(tuple(levels), at_floor[0] if at_floor else levels[-1].size,
                         note=notes[-1] if notes else None, reference=reference,
                         window=window, window_note=window_note)


def window_of(settings, limits: BreakerLimits | None) -> tuple[int, str]:
    """(size, how it was chosen) of the breaker's window: ``settings.window``
    (:class:`~mlops.serving.settings.BreakerSettings`) when set, else the one ``limits`` were
    calibrated for, else :data:`LEGACY_WINDOW`. A ``min_requests`` the window cannot hold is a
    config error (the breaker would never arm)."""
    if settings.window:
        size, note = int(settings.window), "as set by serving.breaker.window"
    elif limits is not None and limits.window:
        size, note = limits.window, limits.window_note or "calibrated on the model's reference"
    else:
        size, note = LEGACY_WINDOW, "a default: no reference rows to calibrate it on"
    if settings.min_requests is not None and settings.min_requests > size:
        raise ConfigError(f"is {settings.min_requests} but the breaker's window holds {size:,} "
                          f"records ({note}), so it would never arm",
                          key="serving.breaker.min_requests",
                          fix=f"set it to at most {size}, or set serving.breaker.window to at "
                              f"least {settings.min_requests}")
    return size, note


def _layout(total_rows: int, size: int, previous: bool):
    if previous:
        return consecutive_layout(total_rows, size)
    return chunk_layout(total_rows, size, min_chunks=DEFAULT_MIN_CHUNKS, max_chunks=DEFAULT_MAX_CHUNKS)


def choose_window(score_idx: np.ndarray | None, n_bins: int, total_rows: int, *, widest: int,
                  k: float = DEFAULT_STD_MULTIPLIER, floor: float = PSI_FLOOR,
                  previous: bool = False) -> tuple[int, str]:
    """(window, why): the smallest of ``WINDOW_BASE x 2^k`` records (holding at least
    :data:`PER_BIN` records per bin of the widest column) at which the score's limit, from
    its PSI over the reference's own windows of that size (each against the rest of the
    reference, or against the window before with ``previous``), is within ``floor``: the
    reference's own noise at that size, at ``k`` sigma, is below the effect worth pausing
    for (the rule that arms the breaker, applied to its window). Past the largest size the
    reference holds :data:`~mlops.monitoring.calibration.DEFAULT_MIN_CHUNKS` whole windows
    of, that largest size.

    >>> idx = np.random.default_rng(0).integers(0, 10, 20_000)    # a stable score: 10 bins
    >>> choose_window(idx, 10, idx.size, widest=10)[0]
    250
    """
    size = WINDOW_BASE
    while size < PER_BIN * widest:
        size *= 2
    if score_idx is None:
        return LEGACY_WINDOW, "a default: the reference holds no scores to calibrate the window on"
    chunks = DEFAULT_MIN_CHUNKS + (1 if previous else 0)
    statistic = consecutive_psis if previous else chunk_psis
    against = "the window before" if previous else "the whole reference"
    tried = None
    while total_rows // size >= chunks:
        layout = _layout(total_rows, size, previous)
        limit = upper_limit(statistic(score_idx, n_bins, layout), k=k, floor=None,
                            statistic="psi of the score", layout=layout)
        if limit is not None and limit.threshold <= floor:
            return size, (f"the smallest window at which the reference's own windows differ from "
                          f"{against} by a score PSI within {floor:g} at {k:g} sigma "
                          f"({limit.threshold:.3f})")
        tried, size = (size, limit), size * 2
    if tried is None:
        return size, (f"the smallest: the reference's {total_rows:,} rows are too few to calibrate "
                      f"a window on ({chunks} windows of at least {WINDOW_BASE:,} records)")
    found = "" if tried[1] is None else f" by a score PSI up to {tried[1].threshold:.3f}"
    return tried[0], (f"the longest the reference's {total_rows:,} rows calibrate: even its "
                      f"windows of that size differ from {against}{found} at {k:g} sigma "
                      f"(above {floor:g}), so its limits are wide; a longer reference "
                      f"calibrates a longer window")


def _column_limit(b, idx: np.ndarray | None, name: str, layout, k: float,
                  floor: float, statistic=chunk_psis) -> Limit | None:
    if idx is None:
        return None
    what = " against the chunk before" if statistic is consecutive_psis else ""
    return upper_limit(statistic(idx, b.n_bins, layout), k=k, floor=floor,
                       statistic=f"psi of {name}{what}", layout=layout)


def reference_for_breaker(path, features: list[str], settings) -> BreakerReference | None:
    """The breaker's bins from the reference stored at ``path`` (the model version's), with
    limits calibrated for ``settings.window`` (:class:`~mlops.serving.settings.BreakerSettings`);
    None when the breaker is off or no readable reference is stored (the breaker then
    stays off, as ``/ready`` says)."""
    if not settings.enabled:
        return None
    try:
        return calibrated_reference(Reference.load(path), features, window=settings.window,
                                    k=settings.std_multiplier, floor=settings.psi_floor,
                                    reference=settings.reference)
    except Exception as exc:
        if not hasattr(exc, "exit_code"):  # ours (missing, unreadable): no breaker; else a bug
            raise
        return None


def calibrated_reference(fitted: Reference, features: list[str], *, window: int | None,
                         k: float = DEFAULT_STD_MULTIPLIER, floor: float = PSI_FLOOR,
                         reference: str = "training") -> BreakerReference:
    """The breaker's bins of ``features`` and the score from a model's fitted reference,
    with their limits calibrated for ``reference`` (``serving.breaker.reference``; ``limits``
    None: the reference has no rows in time order)."""
    bins = BreakerReference.from_reference(fitted, features)
    return replace(bins, limits=calibrate(bins, fitted.rows, window=window, k=k, floor=floor,
                                          reference=reference))
