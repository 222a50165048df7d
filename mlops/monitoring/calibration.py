"""Thresholds calibrated on the reference's own variation, not borrowed from another data set.

A statistic computed on a window (a drift distance, a metric, a PSI) is judged against
the spread of the *same* statistic over consecutive chunks of the reference of the
window's size, as NannyML's standard-deviation thresholds: the limit is
``mean + k * std`` of the chunk values (``mean - k * std`` for a metric that must not
fall), never tighter than an effect-size floor. For the per-feature drift limits (a family of
features judged together) ``k`` (3: "3 sigma") is turned into the prediction interval of one
new value from ``n`` chunk values with the same coverage, ``t_{n-1}(Phi(k)) * sqrt(1 + 1/n)``:
3.2 standard deviations from 40 chunks, 5.9 from 6 (:func:`interval_multiplier`), since the
chunks' mean and deviation are estimates; a metric's band (:func:`band_limit`) keeps plain k.
On a large sample every p-value says
"drift"; a chunk of the reference of the same size carries the same sampling noise
*and* the natural variation between periods (seasons, trends), so only a change larger
than the reference's own wobble crosses the limit.

Chunks compare with the *rest* of the reference (leave one out), as the current window
is compared with a reference it is not part of. For ECDF statistics this costs nothing:
with ``N`` reference values and a chunk of ``n``, ``F_chunk - F_rest = N / (N - n) *
(F_chunk - F_all)`` pointwise, so KS and Wasserstein against the rest are the ones
against the whole reference times ``N / (N - n)``; binned statistics use the rest's
counts (all counts minus the chunk's).

When the reference holds fewer than ``min_chunks`` chunks of the window's size, it is
cut into ``min_chunks`` smaller chunks instead: smaller chunks vary more, so the limit
is conservative (wider), and the limit's note says so.

>>> layout = chunk_layout(total_rows=1000, window_rows=100)
>>> layout.n_chunks, layout.chunk_rows
(10, 100)
>>> limit = upper_limit([0.10, 0.12, 0.11, 0.09, 0.10, 0.12], k=3.0, floor=0.1,
...                     statistic="js", layout=layout)
>>> round(limit.threshold, 4), limit.source      # 0.10667 + 5.95 x 0.01211
(0.1787, 'calibrated')
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from mlops.constraints import Interval, validate

DEFAULT_STD_MULTIPLIER = 3.0      # NannyML's default for its standard-deviation thresholds
DEFAULT_MIN_CHUNKS = 6            # fewer chunks give no usable spread (NannyML warns below 6)
DEFAULT_MAX_CHUNKS = 40           # evenly spaced chunks beyond this add cost, not information
# The most a bounded statistic can reach (JS distance in base 2, the KS statistic, a share).
STATISTIC_MAX = {"js": 1.0, "ks": 1.0, "missing share": 1.0}


@dataclass(frozen=True)
class ChunkLayout:
    """Consecutive row ranges ``[starts[i], ends[i])`` of a time-ordered reference."""

    starts: np.ndarray
    ends: np.ndarray
    chunk_rows: int          # rows per chunk actually used
    window_rows: int         # the size asked for (the current window's rows)
    total_rows: int
    note: str | None = None  # why the chunks differ from the window's size, when they do

    @property
    def n_chunks(self) -> int:
        return int(self.starts.size)

    def slices(self) -> list[slice]:
        return [slice(int(a), int(b)) for a, b in zip(self.starts, self.ends)]


def chunk_layout(total_rows: int, window_rows: int, *, min_chunks: int = DEFAULT_MIN_CHUNKS,
                 max_chunks: int = DEFAULT_MAX_CHUNKS) -> ChunkLayout | None:
    """Chunks of ``window_rows`` consecutive rows of a reference of ``total_rows`` rows.

    At most ``max_chunks`` chunks, evenly spaced over the reference; when fewer than
    ``min_chunks`` fit, ``min_chunks`` smaller chunks (noted). None when the reference
    cannot give ``min_chunks`` chunks of at least 2 rows.

    >>> chunk_layout(100, 40).note
    'the reference holds 2 chunks of 40 rows; calibrated on 6 chunks of 16 rows (wider, conservative limits)'
    """
    validate(dict(total_rows=total_rows, window_rows=window_rows, min_chunks=min_chunks,
                  max_chunks=max_chunks), _LAYOUT_RULES)
    if max_chunks < min_chunks:
        max_chunks = min_chunks
    fits = total_rows // max(window_rows, 1)
    note = None
    if fits >= min_chunks:
        size = window_rows
    else:
        size = total_rows // min_chunks
        if size < 2:
            return None
        note = (f"the reference holds {fits} chunk{'s' if fits != 1 else ''} of {window_rows} rows; "
                f"calibrated on {min_chunks} chunks of {size} rows (wider, conservative limits)")
        fits = min_chunks
    count = min(fits, max_chunks)
    # evenly spaced starts over every whole chunk position, always including first and last
    positions = np.unique(np.round(np.linspace(0, fits - 1, count)).astype(np.int64))
    starts = positions * size
    return ChunkLayout(starts=starts, ends=starts + size, chunk_rows=int(size),
                       window_rows=int(window_rows), total_rows=int(total_rows), note=note)


@dataclass(frozen=True)
class Limit:
    """A calibrated (or fixed) limit on one statistic, and how it was obtained."""

    statistic: str
    direction: str            # "above": breached when the value exceeds it; "below": falls under
    threshold: float
    source: str               # "calibrated" | "floor" (the floor was wider) | "fixed"
    mean: float | None = None
    std: float | None = None
    k: float | None = None
    floor: float | None = None
    chunks: int = 0
    chunk_rows: int = 0
    note: str | None = None
    multiplier: float | None = None   # standard deviations of the chunks the limit sits at

    @property
    def unreachable(self) -> bool:
        """An upper limit at or past the statistic's maximum: no value can ever breach it.

        >>> Limit("js", "above", 1.2, "calibrated").unreachable, Limit("psi", "above", 9.0, "calibrated").unreachable
        (True, False)
        """
        return self.direction == "above" and self.threshold >= STATISTIC_MAX.get(self.statistic, math.inf)

    def breached(self, value: float | None) -> bool:
        """True when ``value`` is past the limit; an undefined value never is."""
        if value is None or not math.isfinite(value):
            return False
        return value > self.threshold if self.direction == "above" else value < self.threshold

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "direction": self.direction,
                "threshold": self.threshold, "source": self.source, "mean": self.mean,
                "std": self.std, "k": self.k, "floor": self.floor, "chunks": self.chunks,
                "chunk_rows": self.chunk_rows, "note": self.note, "multiplier": self.multiplier}

    def describe(self, family: str | None = None) -> str:
        """One line for reports: the limit and where it comes from (``family``: what the
        sigma level stands for when the limit belongs to a family judged together)."""
        sign = ">" if self.direction == "above" else "<"
        if self.source == "fixed":
            return f"{self.statistic} {sign} {self.threshold:.4g} (fixed)"
        pm = "+" if self.direction == "above" else "-"
        m = self.multiplier if self.multiplier is not None else self.k
        text = (f"{self.statistic} {sign} {self.threshold:.4g}: mean {self.mean:.4g} {pm} "
                f"{m:.3g} x std {self.std:.4g} over {self.chunks} reference chunks of {self.chunk_rows} rows"
                + (f" ({self.k:.3g} sigma for one new chunk{': ' + family if family else ''})"
                   if m != self.k else ""))
        if self.source == "floor":
            text += f", raised to the effect-size floor {self.floor:.4g}"
        return text


def interval_multiplier(k: float, n: int) -> float:
    """The multiplier of the chunks' standard deviation that gives one new value the coverage
    ``k`` standard deviations give a normal: ``t_{n-1}(Phi(k)) * sqrt(1 + 1/n)``.

    >>> round(interval_multiplier(3.0, 40), 2), round(interval_multiplier(3.0, 6), 2)
    (3.24, 5.95)
    """
    from scipy import special  # scipy.stats.t.ppf(norm.cdf(k), n - 1), without scipy.stats' import
    return float(special.stdtrit(n - 1, special.ndtr(k)) * math.sqrt(1.0 + 1.0 / n))


def family_k(k: float, family: int) -> float:
    """The per-member sigma level that gives a family of ``family`` statistics, judged
    together ("any of them past its limit"), the false-alarm rate one ``k``-sigma test has
    (Sidak: each member gets ``1 - (1 - a) ** (1 / family)`` of the one-sided tail ``a``).

    >>> round(family_k(3.0, 1), 3), round(family_k(3.0, 12), 3)
    (3.0, 3.689)
    """
    if family <= 1:
        return float(k)
    from scipy import special  # scipy.stats.norm.sf and .isf, without scipy.stats' import
    tail = float(special.ndtr(-k))
    return float(-special.ndtri(-math.expm1(math.log1p(-tail) / family)))


def fixed_limit(statistic: str, threshold: float, direction: str = "above") -> Limit:
    """A limit given by the user, not calibrated."""
    return Limit(statistic=statistic, direction=direction, threshold=float(threshold), source="fixed")


def upper_limit(values: Sequence[float], *, k: float, floor: float | None, statistic: str,
                layout: ChunkLayout) -> Limit | None:
    """``max(mean + m * std, floor)`` of the finite chunk ``values`` (``m``: the prediction
    interval's multiplier for ``k`` and their count); None when fewer than 2."""
    mean, std, n = _spread(values)
    if n < 2:
        return None
    m = interval_multiplier(k, n)
    raw = mean + m * std
    floored = floor is not None and floor > raw
    return Limit(statistic=statistic, direction="above", threshold=float(floor if floored else raw),
                 source="floor" if floored else "calibrated", mean=mean, std=std, k=float(k),
                 floor=None if floor is None else float(floor), chunks=n,
                 chunk_rows=layout.chunk_rows, note=layout.note, multiplier=m)


def band_limit(values: Sequence[float], *, k: float, baseline: float, min_change: float,
               higher_is_better: bool, statistic: str, layout: ChunkLayout) -> Limit | None:
    """A metric's limit: ``baseline -/+ max(k * std, min_change * |baseline|)``.

    Plain ``k`` standard deviations (NannyML's convention), not the prediction interval of
    :func:`upper_limit`: this is one judgment per window, not one per feature of a family
    judged together, and on real data (storms, flights) the wider interval delayed the
    detection of a label shift by two windows or missed it, for one false alarm less.

    The band is centred on the model's baseline and is at least ``min_change`` of it wide
    (relative to the model's own error, never an absolute number borrowed elsewhere).
    """
    mean, std, n = _spread(values)
    if n < 2:
        return None
    spread, floor = k * std, abs(baseline) * min_change
    floored = floor > spread
    width = floor if floored else spread
    threshold = baseline - width if higher_is_better else baseline + width
    return Limit(statistic=statistic, direction="below" if higher_is_better else "above",
                 threshold=float(threshold), source="floor" if floored else "calibrated",
                 mean=mean, std=std, k=float(k), floor=float(min_change), chunks=n,
                 chunk_rows=layout.chunk_rows, note=layout.note, multiplier=float(k))


def chunk_values(layout: ChunkLayout, statistic: Callable[[slice], float | None]) -> list[float]:
    """``statistic(rows)`` for every chunk of ``layout`` (undefined values dropped)."""
    out = []
    for rows in layout.slices():
        value = statistic(rows)
        if value is not None and math.isfinite(value):
            out.append(float(value))
    return out


def _spread(values: Sequence[float]) -> tuple[float, float, int]:
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size < 2:
        return (float(arr.mean()) if arr.size else math.nan), math.nan, int(arr.size)
    return float(arr.mean()), float(arr.std(ddof=1)), int(arr.size)


_LAYOUT_RULES = {"total_rows": [Interval(int, 0, None)], "window_rows": [Interval(int, 1, None)],
                 "min_chunks": [Interval(int, 2, None)], "max_chunks": [Interval(int, 2, None)]}
