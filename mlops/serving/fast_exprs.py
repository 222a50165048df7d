"""Derived feature expressions as plain Python functions, for the single-record fast path.

The plan's derived features are SQL expressions that polars evaluates on frames. For
one record a frame costs far more than the arithmetic, so :func:`compile_numeric`
turns the common numeric subset into a Python closure over one row (a dict)::

    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('-' | '+') unary | primary
    primary := number | column | "column" | ( expr ) | fn ( expr )
    fn      := abs | sqrt | ln | log10 | exp

with polars' Float64 semantics: null in, null out; IEEE results for division by zero
(``x/0 = +-inf``, ``0/0 = NaN``), ``sqrt``/``ln`` of negatives (NaN), ``ln(0) = -inf``,
overflow (inf). Anything else (other functions, CASE, strings, comparisons, an
operation between two literals whose SQL type rules differ from Python's) returns
None and the caller evaluates the plan's polars expressions instead.
``tests/serving/test_serving_fast_exprs.py`` compares both on hostile values.

Example:
    >>> f = compile_numeric("amount / (amount_mean_7d + 1)", {"amount", "amount_mean_7d"})
    >>> f({"amount": 10.0, "amount_mean_7d": 4.0})
    2.0
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable

RowFn = Callable[[dict], "float | None"]
_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|"
                    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\"(?P<quoted>[^\"]+)\"|(?P<op>[-+*/(),]))")


def _div(a: float, b: float) -> float:
    if b != 0.0:
        return a / b
    if a == 0.0 or a != a:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _sqrt(x: float) -> float:
    return math.sqrt(x) if x >= 0.0 else (x if x != x else math.nan)


def _log(fn) -> Callable[[float], float]:
    def log(x: float) -> float:
        if x > 0.0:
            return fn(x)  # also inf -> inf
        return -math.inf if x == 0.0 else math.nan
    return log


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


_FUNCS = {"abs": abs, "sqrt": _sqrt, "ln": _log(math.log), "log10": _log(math.log10),
          "exp": _exp}
_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": _div}


class _Unsupported(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _Unsupported(text[pos:])
        kind = m.lastgroup
        out.append(("name" if kind == "quoted" else kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the tokens; each node is (fn, has_column)."""

    def __init__(self, tokens: list[tuple[str, str]], columns: set[str]):
        self.tokens, self.pos, self.columns = tokens, 0, columns

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise _Unsupported(value)
        self.pos += 1
        return tok

    def binary(self, ops: str, sub) -> tuple[RowFn, bool]:
        left, col = sub()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in ops:
            self.take()
            right, rcol = sub()
            if not (col or rcol):  # literal op literal: SQL integer rules, not ours
                raise _Unsupported(tok[1])
            left, col = _apply(_BINARY[tok[1]], left, right), True
        return left, col

    def expr(self) -> tuple[RowFn, bool]:
        return self.binary("+-", self.term)

    def term(self) -> tuple[RowFn, bool]:
        return self.binary("*/", self.unary)

    def unary(self) -> tuple[RowFn, bool]:
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in "+-":
            self.take()
            inner, col = self.unary()
            if not col:
                raise _Unsupported("signed literal")
            return (inner if tok[1] == "+" else _apply1(lambda x: -x, inner)), col
        return self.primary()

    def primary(self) -> tuple[RowFn, bool]:
        kind, value = self.take()
        if kind == "num":
            x = float(value)
            return (lambda row: x), False
        if kind == "op" and value == "(":
            node = self.expr()
            self.take(")")
            return node
        if kind != "name":
            raise _Unsupported(value)
        nxt = self.peek()
        if nxt == ("op", "("):
            fn = _FUNCS.get(value.lower())
            if fn is None:
                raise _Unsupported(value)
            self.take("(")
            inner, col = self.expr()
            self.take(")")
            if not col:
                raise _Unsupported(value)
            return _apply1(fn, inner), True
        if value not in self.columns:
            raise _Unsupported(value)
        return (lambda row: row[value]), True


def _apply(op, left: RowFn, right: RowFn) -> RowFn:
    def f(row: dict):
        a, b = left(row), right(row)
        return None if a is None or b is None else op(a, b)
    return f


def _apply1(op, inner: RowFn) -> RowFn:
    def f(row: dict):
        x = inner(row)
        return None if x is None else op(x)
    return f


def compile_numeric(text: str, columns: set[str]) -> RowFn | None:
    """A row function equal to the Float64 SQL expression ``text``, or None when the
    expression is outside the subset (``columns``: the Float64 columns it may read)."""
    try:
        parser = _Parser(_tokens(text), columns)
        fn, has_col = parser.expr()
        if parser.peek() is not None or not has_col:
            return None
    except (_Unsupported, ValueError):
        return None
    return fn
