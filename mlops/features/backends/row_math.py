"""Float64 operations of polars for the rows backend, where Python's differ.

Python raises where IEEE 754 (and polars) give a value: ``x / 0`` is +-inf or NaN,
``sqrt(-1)`` and ``ln(-1)`` NaN, ``exp(1000)`` inf, ``0 ** -1`` inf. Comparisons follow
polars' total order of floats: NaN equals NaN and sorts above +inf; -0.0 equals 0.0.
Every function takes and returns floats (never None: :func:`lift1` and :func:`lift2`
wrap them so a null operand gives null).
"""
from __future__ import annotations

import math
from collections.abc import Callable

NAN, INF = math.nan, math.inf


def _div(a: float, b: float) -> float:
    if b != 0.0:
        return a / b
    if a == 0.0 or a != a:
        return NAN
    return math.copysign(INF, a) * math.copysign(1.0, b)


def _mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:  # b == 0 or a infinite
        return NAN


def pow_const(e: float) -> Callable[[float], float]:
    """``x ** e`` for a constant exponent, as polars computes it: 1 and 0.5 and the
    integers 2 to 9 specially (the identity, sqrt, repeated products), else C ``pow``."""
    if e == 1.0:
        return lambda x: x
    if e == 0.5:
        return _sqrt
    if e.is_integer() and 1.0 < e < 10.0:
        def power(x: float) -> float:
            out = x
            for _ in range(int(e) - 1):
                out = out * x
            return out
        return power
    return lambda x: pow_(x, e)


def pow_(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = b.is_integer() and abs(b) < 2 ** 53 and int(b) % 2 == 1
        return -INF if a < 0 and odd else INF
    except ValueError:  # 0 ** negative (C: inf), negative ** fraction (C: nan)
        if a == 0.0:
            odd = b.is_integer() and abs(b) < 2 ** 53 and int(b) % 2 == 1
            return math.copysign(INF, a) if odd else INF
        return NAN


def _log(fn: Callable[[float], float], zero_at: float = 0.0) -> Callable[[float], float]:
    def log(x: float) -> float:
        if x > zero_at:
            return fn(x)
        if x == zero_at:
            return -INF
        return NAN  # below the domain, or NaN
    return log


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def _round_to(fn: Callable[[float], int]) -> Callable[[float], float]:
    def rounded(x: float) -> float:
        if not math.isfinite(x) or abs(x) >= 2.0 ** 52:
            return x
        return math.copysign(float(fn(x)), x)  # floor(-0.5) = -1; ceil(-0.5) = -0.0
    return rounded


def _sign(x: float) -> float:
    return x if x != x or x == 0.0 else math.copysign(1.0, x)


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else NAN  # NaN, -inf and negatives: NaN


def _log_base(base: float) -> Callable[[float], float]:
    ln, scale = _log(math.log), math.log(base)
    return lambda x: ln(x) / scale  # polars: x.ln() / base.ln()


# cbrt is not here: polars' differs from the C library's in the last bit
FLOAT_FUNCTIONS = {"abs": abs, "sqrt": _sqrt, "ln": _log(math.log),
                   "log10": _log_base(10.0), "log2": _log_base(2.0),
                   "log1p": _log(math.log1p, -1.0), "exp": _exp, "floor": _round_to(math.floor),
                   "ceil": _round_to(math.ceil), "ceiling": _round_to(math.ceil), "sign": _sign}
ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": _div,
          "%": _mod}


def total_order(x):
    """polars' total order of floats: NaN equals NaN and sorts above everything."""
    return (1, 0.0) if x != x else (0, x)


COMPARE = {"=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def lift1(op, f):
    def g(row):
        x = f(row)
        return None if x is None else op(x)
    return g


def lift2(op, f, g):
    def h(row):
        a = f(row)
        if a is None:
            return None
        b = g(row)
        return None if b is None else op(a, b)
    return h
