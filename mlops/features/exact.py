"""Exact window sums: ``sum``, ``mean`` and ``std`` that depend only on the window's values.

A rolling kernel that adds entering values and subtracts leaving ones (polars'
``rolling_sum_by``, Kahan-compensated) gives a result that depends on the whole path of
the window through the entity's history: training over a year of events and serving
over the last 30 days then differ in the last bits, enough to flip a tree split. Here
the sums are *exact*, so every path gives the same bits, whatever the history before
the window, the order of tied events or the batch the request came in:

- ``sum`` is the exact sum of the window's values, correctly rounded (as ``math.fsum``);
- ``mean`` is that rounded sum divided by the count (computed on the scaled sum, so a
  sum beyond the float range still gives a finite mean);
- ``std`` (sample, n - 1) is ``sqrt(D / (n (n - 1)))`` with ``D = n * sum(x^2) - sum(x)^2``
  computed exactly and rounded once; a window of equal values gives exactly 0 (D is 0 exactly).

The frame form (:func:`digit_struct`, :func:`sum_from_digits`...) represents each value
exactly as integer *digits* of :data:`W` bits on one global grid (every finite double
is an integer multiple of 2^-1074), so a window sum is a set of integer sums (differences
of int64 prefix sums, exact) and one rounding at the end; the sum,
mean and std of one window share those sums. The row form
(:func:`exact_sum`, ...) does the same with Python integers. Both round with the same
rule, so they agree bit for bit; ``tests/features/test_features_exact.py`` checks both
against ``fractions.Fraction``. Values are finite or null (the plan's rules null or
reject non-finite values before any window). Exact up to 2^37 values per window.
"""
from __future__ import annotations

import math

import numpy as np

W = 26                      # bits per digit: two fit a double exactly; Int64 sums hold 2**37 of them
MASK = (1 << W) - 1
BASE = -1074                # exponent of the grid of values (the smallest subnormal)
SQUARE_BASE = 2 * BASE      # grid of squared values
EXTRA = 3                   # digit levels above the data's own for carries of a window sum


# ------------------------------------------------------------------ row form (Python ints)
def units(x: float) -> int:
    """``x`` as an exact integer multiple of 2^-1074 (``x`` finite)."""
    num, den = x.as_integer_ratio()
    return num << (1074 - (den.bit_length() - 1))


def round_units(total: int, base: int) -> float:
    """The double nearest ``total * 2**base`` (ties to even), as :func:`_round_digits`:
    the top 96 bits rounded once, then scaled (a subnormal result rounds again)."""
    if total == 0:
        return 0.0
    mag = abs(total)
    shift = ((mag.bit_length() - 1) // W - 3) * W
    s = mag / (1 << shift) if shift >= 0 else float(mag << -shift)
    try:
        out = math.ldexp(s, shift + base)
    except OverflowError:
        out = math.inf
    return out if total > 0 else -out


def exact_sum(values: list[float]) -> float:
    """Correctly rounded sum of ``values`` (finite floats)."""
    total = _fsum(values)  # correctly rounded, C speed: used whenever it is exact
    if math.isfinite(total) and (total == 0.0 or abs(total) >= 2.2250738585072014e-308):
        return total + 0.0  # -0.0 -> 0.0 as the frame form
    return round_units(sum(units(v) for v in values), BASE)


def exact_mean(values: list[float]) -> float:
    """``exact_sum(values) / len(values)``, from the scaled sum (no overflow)."""
    n = len(values)
    total = _fsum(values)
    if math.isfinite(total) and (total == 0.0 or abs(total / n) >= 2.2250738585072014e-308):
        return total / n + 0.0
    return _scaled_div(sum(units(v) for v in values), BASE, n)


def _fsum(values: list[float]) -> float:
    try:
        return math.fsum(values)
    except OverflowError:  # an intermediate partial beyond the float range
        return math.inf


def _scaled_div(total: int, base: int, n: int) -> float:
    """The mean as the frame form computes it: the scaled rounded sum over ``n``."""
    if total == 0:
        return 0.0
    mag = abs(total)
    shift = ((mag.bit_length() - 1) // W - 3) * W
    s = mag / (1 << shift) if shift >= 0 else float(mag << -shift)
    out = math.ldexp(s / n, shift + base)
    return out if total > 0 else -out


def exact_std(values: list[float]) -> float | None:
    """Sample standard deviation from exact sums (None below two values)."""
    n = len(values)
    if n < 2:
        return None
    ints = [units(v) for v in values]
    s1 = sum(ints)
    d = n * sum(i * i for i in ints) - s1 * s1  # 0 exactly when all values are equal
    return _std_from(d, n) if d else 0.0


def _std_from(d: int, n: int) -> float:
    """sqrt(d * 2**SQUARE_BASE / (n (n - 1))), ``d`` exact and positive."""
    mag = d
    shift = ((mag.bit_length() - 1) // W - 3) * W
    s = mag / (1 << shift) if shift >= 0 else float(mag << -shift)
    e = shift + SQUARE_BASE
    if e % 2:
        s, e = s * 2.0, e - 1
    try:
        return math.ldexp(math.sqrt(s / (n * (n - 1))), e // 2)
    except OverflowError:  # beyond the float range (values near +-1.8e308)
        return math.inf


# ------------------------------------------------------------------ frame form (numpy digits)
def levels(lo: float, hi: float) -> tuple[int, int]:
    """Digit levels [first, last] holding the values with magnitudes in [lo, hi] (> 0):
    a 53-bit mantissa spans at most four levels below its top bit's."""
    return int(_top_bit(np.array([lo]))[0] // W - 3), int(_top_bit(np.array([hi]))[0] // W)


def square_levels(first: int, last: int) -> tuple[int, int]:
    """Square-grid levels holding the squares of values at levels [first, last]."""
    return 2 * first, 2 * last + 2


def _mantissa(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|x| = M * 2**(p - 1074) with M < 2**53 (int64), p >= 0."""
    bits = np.abs(x).view(np.uint64)
    field = (bits >> np.uint64(52)).astype(np.int64)
    frac = (bits & np.uint64((1 << 52) - 1)).astype(np.int64)
    normal = field > 0
    return np.where(normal, frac | (1 << 52), frac), np.where(normal, field - 1, 0)


def _top_bit(x: np.ndarray) -> np.ndarray:
    m, p = _mantissa(x)
    return p + np.frexp(m.astype(np.float64))[1] - 1


def _digit(m: np.ndarray, p: np.ndarray, level) -> np.ndarray:
    """Digit ``level`` of M * 2**p (int64 arrays; level scalar or array)."""
    s = level * W - p
    right = (m >> np.clip(s, 0, 63)) & MASK
    t = np.clip(-s, 0, 63)
    left = np.where(t < W, (m & (MASK >> np.minimum(t, W))) << t, 0)
    return np.where(s >= 53, 0, np.where(s >= 0, right, left))


def value_digits(x: np.ndarray, first: int, last: int) -> list[np.ndarray]:
    """Signed digits of each value at levels first..last (nulls/NaN as 0): from the top
    level down, each digit is the floor of the remainder scaled by a power of two, and
    the remainder loses it, every step exact in floating point (the values' bits lie in
    those levels, so a scaled remainder is below 2**W and never leaves the float range)."""
    x = np.where(np.isfinite(x), x, 0.0)
    rest = np.abs(x)
    negative = x < 0
    out = []
    for k in range(last, first - 1, -1):
        d = np.floor(np.ldexp(rest, -(k * W + BASE)))
        rest -= np.ldexp(d, k * W + BASE)
        digit = d.astype(np.int64)
        np.negative(digit, out=digit, where=negative)
        out.append(digit)
    return out[::-1]


def square_digits(x: np.ndarray, first: int, last: int) -> list[np.ndarray]:
    """Digits of each value's exact square at square levels first..last (all >= 0)."""
    x = np.where(np.isfinite(x), x, 0.0)
    m, p = _mantissa(x)
    top = np.where(m > 0, (p + np.frexp(m.astype(np.float64))[1] - 1) // W, 0)
    a = [_digit(m, p, top - i) for i in range(4)]
    local = [np.zeros_like(m) for _ in range(9)]  # square levels 2 top - 6 .. 2 top + 2
    for i in range(4):
        for j in range(4):
            local[6 - i - j] += a[i] * a[j]
    for i in range(8):  # carries: every local digit below 2**W
        local[i + 1] += local[i] >> W
        local[i] &= MASK
    low = 2 * top - 6
    return [sum(np.where(low + i == lv, local[i], 0) for i in range(9))
            for lv in range(first, last + 1)]


def _carry(d: np.ndarray) -> np.ndarray:
    """Digits (levels x rows) with every level but the top in [0, 2**W), in place."""
    for k in range(d.shape[0] - 1):
        c = d[k] >> W
        d[k] -= c << W
        d[k + 1] += c
    return d


def _normalize(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sign, digits): the columns' values (levels x rows) as sign and non-negative
    digits below 2**W, with :data:`EXTRA` levels on top for the carries."""
    k, rows = sums.shape
    d = np.zeros((k + EXTRA, rows), np.int64)
    d[:k] = sums
    _carry(d)
    negative = d[-1] < 0
    if negative.any():
        neg = np.zeros((k + EXTRA, int(negative.sum())), np.int64)
        neg[:k] = -sums[:, negative]
        d[:, negative] = _carry(neg)
    return np.where(negative, -1, 1), d


def _round_digits(d: np.ndarray, first: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """(s, e) with the magnitude ~ s * 2**e, s correctly rounded (see :func:`round_units`)."""
    k, rows = d.shape
    lead, low = np.full(rows, -1), np.full(rows, k)
    for i in range(k):  # highest and lowest non-zero level of each column
        nonzero = d[i] != 0
        lead[nonzero] = i
        low[nonzero & (low == k)] = i
    flat, col = d.ravel(), np.arange(rows)

    def at(j):
        return np.where(j >= 0, flat[np.clip(j, 0, k - 1) * rows + col], 0).astype(np.float64)
    x = (at(lead) * 2.0 ** W + at(lead - 1)) * 2.0 ** (2 * W)
    y = at(lead - 2) * 2.0 ** W + at(lead - 3)
    s = x + y
    err = y - (s - x)  # exact: x and y are integers below 2**96, s their rounded sum
    sticky = low < lead - 3  # a non-zero digit below the four read
    s = np.where(sticky & (err > 0) & (2 * err == np.spacing(s)), s + 2 * err, s)
    return np.where(lead >= 0, s, 0.0), (lead + first - 3) * W + base


def sums_and_means(sums: np.ndarray, first: int, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correctly rounded window sums, and means (the scaled sum over ``n``), from the
    per-level window sums (levels x rows): one normalization for both."""
    sign, d = _normalize(sums)
    s, e = _round_digits(d, first, BASE)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return (sign * np.ldexp(s, e)) + 0.0, sign * np.ldexp(s / n, e)


def sum_from_digits(sums: np.ndarray, first: int) -> np.ndarray:
    return sums_and_means(sums, first, np.ones(sums.shape[1]))[0]


def mean_from_digits(sums: np.ndarray, first: int, n: np.ndarray) -> np.ndarray:
    return sums_and_means(sums, first, n)[1]


def std_from_digits(sums: np.ndarray, first: int, squares: np.ndarray, first_sq: int,
                    n: np.ndarray) -> np.ndarray:
    """Sample std from the window sums of value and square digits (levels x rows; rows
    with n >= 2)."""
    _, d1 = _normalize(sums)
    _, d2 = _normalize(squares)
    k1, k2 = d1.shape[0], d2.shape[0]
    width = max(2 * (k1 - 1) + 2 * first - first_sq + 1, k2) + 1
    dd = np.zeros((width, d1.shape[1]), np.int64)
    dd[:k2] = d2 * n.astype(np.int64)
    off = 2 * first - first_sq  # level of digit (0, 0) of s1 * s1 on the square grid
    for i in range(k1):
        for j in range(k1):
            if off + i + j >= 0:
                dd[off + i + j] -= d1[i] * d1[j]
    _, dn = _normalize(dd)
    s, e = _round_digits(dn, first_sq, SQUARE_BASE)
    odd = e % 2 != 0
    s, e = np.where(odd, s * 2.0, s), np.where(odd, e - 1, e)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.ldexp(np.sqrt(s / (n * (n - 1.0))), e // 2)
