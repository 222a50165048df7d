"""Expression trees as Python closures over one row (a dict), with polars' semantics.

:func:`compile_expr` walks the typed tree of :mod:`mlops.features.sql_tree` children
first (a loop over an explicit stack, no recursion) and builds one closure per node; a
chain ``a + b - c + ...`` becomes one closure that loops over its terms, so evaluating
is never deeper than the tree's nesting (bounded by the parser). Every part without a
column is evaluated once by polars itself (constant folding: literal typing, integer
and decimal rules stay polars'). The rest follows polars' Float64 semantics: null in,
null out; IEEE results where Python would raise (``x/0``, ``sqrt(-1)``, ``exp(1000)``,
``0 ** -1``); comparisons in polars' total order (NaN equals NaN and sorts above
+inf; -0.0 equals 0.0); three-valued AND/OR/NOT; ``IN`` with a null in the list gives
null when not found. What :func:`_node` and :func:`_call` do not list (string
functions, LIKE, casts to integers or strings, integer arithmetic between two columns)
returns None: the plan then keeps the frame backend for the whole plan. The property
test ``tests/features/test_backend_equality.py`` compares both backends on generated
expressions and hostile values.

Example:
    >>> from mlops.features.sql_guard import parse_sql
    >>> f = compile_expr(parse_sql("a / (b + 1)", key="k"), {"a": "float", "b": "float"})
    >>> f.fn({"a": 10.0, "b": 4.0}), f.fn({"a": 1.0, "b": -1.0}), f.fn({"a": None, "b": 1.0})
    (2.0, inf, None)
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import polars as pl
from polars.exceptions import PanicException

from mlops.features.backends.row_math import (
    ARITH,
    COMPARE,
    FLOAT_FUNCTIONS,
    lift1,
    lift2,
    pow_,
    pow_const,
    total_order,
)
from mlops.features.sql_guard import RESERVED
from mlops.features.sql_tree import (
    LEVEL,
    Between,
    Binary,
    Call,
    Case,
    Cast,
    Column,
    Extract,
    InList,
    IsTest,
    Node,
    Unary,
    children,
    postorder,
    render_sql,
)


@dataclass(frozen=True)
class RowExpr:
    """A compiled expression: ``fn(row)`` and the kind of value it gives
    (float, int, bool, str, null, ts); ``const`` when it reads no column."""

    fn: Callable[[dict], object]
    kind: str
    const: bool = False


NAN = math.nan


class _Unsupported(Exception):
    pass


# ------------------------------------------------------------ nodes
def _fold(node: Node) -> RowExpr:
    """A column-free subtree, evaluated once by polars (its value and kind)."""
    try:
        s = pl.select(pl.sql_expr(render_sql(node, reserved=RESERVED)).alias("v")).to_series()
    except (Exception, PanicException) as exc:
        raise _Unsupported(str(exc)) from None
    value, dtype = s[0], s.dtype
    if value is None:
        return RowExpr(lambda row: None, "null", True)
    if dtype == pl.Float64:
        kind = "float"
    elif isinstance(dtype, pl.Decimal):  # polars converts it to Float64 beside a float
        kind, value = "decimal", float(value)
    elif dtype.is_integer():
        kind = "int"
    elif dtype == pl.Boolean:
        kind = "bool"
    elif dtype == pl.String:
        kind = "str"
    else:
        raise _Unsupported(str(dtype))
    return RowExpr(lambda row: value, kind, True)


def _numeric(*parts: RowExpr) -> bool:
    """Float64 arithmetic in polars: a float operand, the others float, integer, decimal
    or null, never an integer column beside a decimal (polars computes that in decimal)."""
    kinds = {p.kind for p in parts}
    return kinds <= {"float", "int", "decimal", "null"} and "float" in kinds \
        and not ("decimal" in kinds and any(p.kind == "int" and not p.const for p in parts))


def _as_float(p: RowExpr) -> Callable:
    if p.kind in ("float", "null", "decimal"):
        return p.fn
    return lift1(float, p.fn)


def _binary(node: Binary, left: RowExpr, right: RowExpr) -> RowExpr:
    op = node.op
    if op in ARITH:
        if not _numeric(left, right):
            raise _Unsupported(op)
        return RowExpr(lift2(ARITH[op], _as_float(left), _as_float(right)), "float")
    if op in COMPARE:
        return RowExpr(_comparison(op, left, right), "bool")
    if op in ("and", "or") and {left.kind, right.kind} <= {"bool", "null"}:
        return RowExpr((_and if op == "and" else _or)(left.fn, right.fn), "bool")
    raise _Unsupported(op)


def _comparison(op: str, left: RowExpr, right: RowExpr) -> Callable:
    cmp = COMPARE[op]
    if _numeric(left, right):
        return lift2(lambda a, b: cmp(total_order(a), total_order(b)), _as_float(left), _as_float(right))
    kinds = {left.kind, right.kind} - {"null"}
    if kinds == {"int"}:  # integers (an extracted field against an integer constant)
        return lift2(cmp, left.fn, right.fn)
    if kinds in ({"str"}, {"bool"}) and (op in ("=", "<>") or kinds == {"str"}):
        return lift2(cmp, left.fn, right.fn)
    raise _Unsupported(op)


def _kleene(f, g, decisive: bool):
    """Three-valued AND (``decisive`` False) or OR (True): null only when undecided."""
    def h(row):
        a, b = f(row), g(row)
        if a is decisive or b is decisive:
            return decisive
        return None if a is None or b is None else not decisive
    return h


def _and(f, g):
    return _kleene(f, g, False)


def _or(f, g):
    return _kleene(f, g, True)


def _chain(node: Binary, parts: list[RowExpr], chains: dict) -> RowExpr:
    """``a + b - c ...`` as one loop (a left-associative chain of float operations)."""
    left = node.left
    head = chains.get(id(left)) if isinstance(left, Binary) and LEVEL[left.op] == LEVEL[node.op] \
        else None
    first, terms = head if head is not None else (_as_float(parts[0]), [])
    right = parts[1]
    divisor = right.fn(None) if node.op == "/" and right.const else None
    if divisor is not None:  # polars multiplies by the reciprocal of a constant (not of null)
        inverse = ARITH["/"](1.0, float(divisor))
        terms = terms + [(ARITH["*"], lambda row: inverse)]
    else:
        terms = terms + [(ARITH[node.op], _as_float(right))]
    chains[id(node)] = (first, terms)

    def run(row):
        acc = first(row)
        for op, f in terms:
            if acc is None:
                return None
            b = f(row)
            if b is None:
                return None
            acc = op(acc, b)
        return acc
    return RowExpr(run, "float")


def _in_list(node: InList, operand: RowExpr) -> RowExpr:
    items = [_fold(i) for i in node.items]
    has_null = any(i.kind == "null" for i in items)
    if operand.kind == "float" and all(i.kind in ("float", "int", "decimal", "null") for i in items):
        values = {total_order(float(i.fn(None))) for i in items if i.kind != "null"}
        key = total_order
    elif operand.kind == "str" and all(i.kind in ("str", "null") for i in items):
        values, key = {i.fn(None) for i in items if i.kind != "null"}, (lambda x: x)
    else:
        raise _Unsupported("IN")
    neg, f = node.negated, operand.fn

    def test(row):
        x = f(row)
        if x is None:
            return None
        if key(x) in values:
            return not neg
        return None if has_null else neg
    return RowExpr(test, "bool")


def _is_test(node: IsTest, operand: RowExpr) -> RowExpr:
    f, neg = operand.fn, node.negated
    if node.test == "null":
        return RowExpr(lambda row: (f(row) is None) != neg, "bool")
    if operand.kind not in ("bool", "null"):
        raise _Unsupported("IS")
    want = node.test == "true"
    return RowExpr(lambda row: (f(row) is want) != neg, "bool")


def _between(node: Between, x: RowExpr, lo: RowExpr, hi: RowExpr) -> RowExpr:
    low = _comparison(">=", x, lo)
    high = _comparison("<=", x, hi)
    both = _and(low, high)
    if not node.negated:
        return RowExpr(both, "bool")
    return RowExpr(lift1(lambda v: not v, both), "bool")


def _case(node: Case, parts: list[RowExpr]) -> RowExpr:
    it = iter(parts)
    operand = next(it) if node.operand is not None else None
    whens = [(next(it), next(it)) for _ in node.whens]
    default = next(it) if node.default is not None else RowExpr(lambda row: None, "null", True)
    results = [r for _, r in whens] + [default]
    kinds = {r.kind for r in results} - {"null"}
    if kinds <= {"float", "int", "decimal"} and kinds:
        kind = "int" if kinds == {"int"} else "float"
        outs = [_as_float(r) if kind == "float" else r.fn for r in results]
    elif len(kinds) == 1 and kinds <= {"bool", "str"}:
        kind, outs = kinds.pop(), [r.fn for r in results]
    else:
        raise _Unsupported("CASE")
    conds = [_comparison("=", operand, c) if operand is not None else c.fn for c, _ in whens]
    if operand is None and any(c.kind not in ("bool", "null") for c, _ in whens):
        raise _Unsupported("CASE")
    pairs = list(zip(conds, outs))
    fallback = outs[-1]

    def run(row):
        for cond, out in pairs:
            if cond(row) is True:
                return out(row)
        return fallback(row)
    return RowExpr(run, kind)


def _cast(node: Cast, operand: RowExpr) -> RowExpr:
    probe = pl.select(pl.lit(1.5, dtype=pl.Float64).alias("v")).select(
        pl.sql_expr(f"CAST(v AS {node.type.upper()})").alias("v"))
    if probe.schema["v"] != pl.Float64 or operand.kind not in ("float", "int", "bool"):
        raise _Unsupported(node.type)
    if operand.kind == "bool":
        return RowExpr(lift1(lambda b: 1.0 if b else 0.0, operand.fn), "float")
    return RowExpr(_as_float(operand), "float")


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIELDS = {"hour": lambda t: (t // 3_600_000_000) % 24, "minute": lambda t: (t // 60_000_000) % 60,
           "year": lambda t: (_EPOCH + timedelta(microseconds=t)).year,
           "month": lambda t: (_EPOCH + timedelta(microseconds=t)).month,
           "day": lambda t: (_EPOCH + timedelta(microseconds=t)).day}


def _extract(node: Extract, operand: RowExpr) -> RowExpr:
    if operand.kind != "ts" or node.field not in _FIELDS:
        raise _Unsupported(node.field)
    return RowExpr(lift1(_FIELDS[node.field], operand.fn), "int")


def _call(node: Call, args: list[RowExpr]) -> RowExpr:
    name = node.name
    if name in FLOAT_FUNCTIONS and args[0].kind == "float":
        return RowExpr(lift1(FLOAT_FUNCTIONS[name], args[0].fn), "float")
    if name in ("pow", "power") and _numeric(*args) and args[1].const:
        if args[1].kind == "null":
            return RowExpr(lambda row: None, "float")
        power = pow_const(float(args[1].fn(None)))
        return RowExpr(lift1(power, _as_float(args[0])), "float")
    if name in ("pow", "power") and _numeric(*args) and args[0].const:
        return RowExpr(lift2(pow_, _as_float(args[0]), _as_float(args[1])), "float")
    if name in ("greatest", "least") and _numeric(*args):
        fns, pick = [_as_float(a) for a in args], max if name == "greatest" else min

        def extreme(row):  # polars: nulls skipped, NaN too unless every value is NaN
            vals = [v for v in (f(row) for f in fns) if v is not None]
            real = [v for v in vals if v == v]
            return pick(real) if real else (NAN if vals else None)
        return RowExpr(extreme, "float")
    if name == "coalesce" and (_numeric(*args) or len({a.kind for a in args} - {"null"}) == 1):
        kind = "float" if _numeric(*args) else ({a.kind for a in args} - {"null"}).pop()
        if kind == "int":
            raise _Unsupported(name)
        fns = [_as_float(a) if kind == "float" else a.fn for a in args]
        return RowExpr(lambda row: next((v for v in (f(row) for f in fns) if v is not None), None),
                       kind)
    if name == "nullif" and _numeric(*args):
        a, b = _as_float(args[0]), _as_float(args[1])

        def nullif(row):
            x, y = a(row), b(row)
            return None if x is None or (y is not None and total_order(x) == total_order(y)) else x
        return RowExpr(nullif, "float")
    raise _Unsupported(name)


def _node(node: Node, parts: list[RowExpr], kinds: dict[str, str], chains: dict) -> RowExpr:
    if isinstance(node, Column):
        kind = kinds.get(node.name)
        if kind is None:
            raise _Unsupported(node.name)
        name = node.name
        return RowExpr(lambda row: row[name], kind)
    if isinstance(node, Unary):
        if node.op == "not" and parts[0].kind == "bool":
            return RowExpr(lift1(lambda b: not b, parts[0].fn), "bool")
        if node.op in "-+" and parts[0].kind == "float":
            return parts[0] if node.op == "+" else RowExpr(lift1(lambda x: -x, parts[0].fn), "float")
        raise _Unsupported(node.op)
    if isinstance(node, Binary):
        if node.op in ARITH and _numeric(*parts):
            return _chain(node, parts, chains)
        return _binary(node, *parts)
    handlers = {IsTest: _is_test, InList: _in_list, Cast: _cast, Extract: _extract}
    if type(node) in handlers:
        return handlers[type(node)](node, parts[0])
    if isinstance(node, Between):
        return _between(node, *parts)
    if isinstance(node, Case):
        return _case(node, parts)
    return _call(node, parts)


def compile_expr(tree: Node, kinds: dict[str, str]) -> RowExpr | None:
    """The closure of ``tree`` over rows whose columns have ``kinds`` (float, str, bool,
    ts), or None when some part has no exact row form."""
    done: dict[int, RowExpr] = {}
    reads: dict[int, bool] = {}  # the subtree reads a column
    chains: dict = {}
    try:
        for node in postorder(tree):
            kids = children(node)
            reads[id(node)] = isinstance(node, Column) or any(reads[id(c)] for c in kids)
            if reads[id(node)]:  # a column-free operand is folded whole, once
                parts = [done[id(c)] if reads[id(c)] else _fold(c) for c in kids]
                done[id(node)] = _node(node, parts, kinds, chains)
        return done[id(tree)] if reads[id(tree)] else _fold(tree)
    except _Unsupported:
        return None
