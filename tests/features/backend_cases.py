"""Hypothesis strategies for backend equality: random feature specs and histories.

A case is (spec, history rows, point rows) over one source schema: an entity, a
timestamp, two float columns with hostile values (0, -0.0, +-1e300, subnormals, NaN,
+-inf, nulls), a category column (nulls, an unseen category at the points) and an event
id with repeats. Specs draw every aggregate over numeric, categorical and derived
columns, periods and defaults, derived expressions before and after the windows (the
arithmetic, logic, CASE, IN, BETWEEN, functions and casts the rows backend claims), and
the event rules. Histories have ties, exact duplicates and rows out of time order.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from hypothesis import strategies as st

T0 = datetime(2024, 1, 1)
SCHEMA = {"user": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64, "y": pl.Float64,
          "cat": pl.String, "eid": pl.Int64}
AGGS = ["count", "sum", "mean", "min", "max", "std", "distinct", "last", "since_last"]
STRING_AGGS = ["count", "distinct", "last", "since_last"]
HOSTILE = [0.0, -0.0, 1.0, -1.0, 2.5, -3.75, 0.1, 1e300, -1e300, 1.7e308, 1e-300, 5e-324,
           123456789.125, 1e16, 1e16 + 2, float("inf"), float("-inf"), float("nan")]
LITERALS = ["0", "1", "2", "-3", "2.5", "0.1", "1e300", "1e-300", "100", "0.5"]

# mostly amounts with cents (whose float sums round: 0.1 + 0.2 + 0.3 != 0.6), then hostile
# values and nulls
values = st.sampled_from(["cents", "cents", "cents", "hostile", "none"]).flatmap(
    lambda kind: st.integers(-10 ** 9, 10 ** 9).map(lambda c: c / 100) if kind == "cents"
    else st.sampled_from(HOSTILE) if kind == "hostile" else st.none())


def _numeric(columns: list[str]) -> st.SearchStrategy[str]:
    leaves = st.one_of(st.sampled_from(columns), st.sampled_from(LITERALS))

    def extend(inner):
        unary = st.tuples(st.sampled_from(["-", "abs", "sqrt", "ln", "exp", "floor", "ceil",
                                           "sign", "log10", "log1p", "cbrt", "log2"]), inner)
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner)
        call2 = st.tuples(st.sampled_from(["pow", "greatest", "least", "coalesce", "nullif"]),
                          inner, inner)
        case = st.tuples(_boolean(inner), inner, st.one_of(st.none(), inner))
        return st.one_of(
            unary.map(lambda t: f"-({t[1]})" if t[0] == "-" else f"{t[0]}({t[1]})"),
            binary.map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
            call2.map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            case.map(lambda t: f"CASE WHEN {t[0]} THEN {t[1]}"
                               + (f" ELSE {t[2]}" if t[2] else "") + " END"),
            _boolean(inner).map(lambda b: f"CAST({b} AS DOUBLE)"),
            st.just("EXTRACT(HOUR FROM ts) + 5e-1"))
    return st.recursive(leaves, extend, max_leaves=6)


def _boolean(num: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    compare = st.tuples(num, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), num)
    return st.one_of(
        compare.map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        num.map(lambda e: f"({e}) IS NULL"), num.map(lambda e: f"({e}) IS NOT NULL"),
        num.map(lambda e: f"({e}) IN (1, 2.5, -3)"), num.map(lambda e: f"({e}) NOT IN (0, NULL)"),
        st.tuples(num, num).map(lambda t: f"({t[0]}) BETWEEN ({t[1]}) AND 10"),
        st.sampled_from(["cat = 'u'", "cat IN ('u', 'w')", "cat IS NULL", "NOT (cat <> 'v')"]),
        st.tuples(compare, compare).map(lambda t: f"(({t[0][0]}) > 0) AND (({t[1][0]}) < 5)"),
        compare.map(lambda t: f"NOT (({t[0]}) > 1) OR ({t[2]}) IS NULL"))


def _window(columns: list[str], numeric: set[str]):
    column = st.sampled_from(columns)
    return column.flatmap(lambda c: st.fixed_dictionaries({
        "column": st.just(c),
        "aggs": st.lists(st.sampled_from(AGGS if c in numeric else STRING_AGGS), min_size=1,
                         max_size=4, unique=True),
        "periods": st.lists(st.sampled_from(["1s", "5s", "30s", "30s", "1m", "1m"]), min_size=1,
                            max_size=2, unique=True),
        "default": st.sampled_from([None, -1.0, 0.0, 7.5]) if c in numeric else st.none()}))


@st.composite
def specs(draw) -> dict:
    """A feature spec over :data:`SCHEMA` (see the module docstring)."""
    raw = draw(st.lists(st.sampled_from(["x", "y"]), unique=True, max_size=2))
    categorical = draw(st.sampled_from([[], ["cat"]]))
    row_level = draw(st.lists(_numeric(["x", "y"]), max_size=2))
    derived = [{"name": f"r{i}", "expr": e} for i, e in enumerate(row_level)]
    if draw(st.booleans()):
        derived.append({"name": "label_of", "kind": "categorical",
                        "expr": draw(st.sampled_from(["CASE WHEN x > 0 THEN 'pos' ELSE cat END",
                                                      "coalesce(cat, 'none')"]))})
    numeric = {"x", "y", *(d["name"] for d in derived if d["name"].startswith("r"))}
    windows = _distinct(draw(st.lists(_window(sorted(numeric) + ["cat"], numeric), min_size=1,
                                      max_size=3)))
    names = _window_names(windows)
    after = draw(st.lists(_numeric(sorted(numeric | set(names))), max_size=2))
    derived += [{"name": f"p{i}", "expr": e} for i, e in enumerate(after)]
    rules = {"nonfinite": draw(st.sampled_from(["missing", "reject"])),
             "duplicates": draw(st.sampled_from(["identical", "all"]))}
    return {"name": "prop", "entity": "user", "timestamp": "ts", "raw": raw,
            "categorical": categorical, "windows": windows, "derived": derived, "rules": rules,
            "event_id": draw(st.sampled_from([None, "eid"]))}


def _distinct(windows: list[dict]) -> list[dict]:
    """The windows without a feature defined twice (the spec would refuse it)."""
    seen, out = set(), []
    for w in windows:
        aggs = [a for a in w["aggs"] if not set(_window_names([{**w, "aggs": [a]}])) & seen]
        if aggs:
            w = {**w, "aggs": aggs}
            seen |= set(_window_names([w]))
            out.append(w)
    return out


def _window_names(windows: list[dict]) -> list[str]:
    out = []
    for w in windows:
        for agg in w["aggs"]:
            base = w["column"] if agg not in ("count", "since_last") else "events"
            out += [f"{base}_{agg}_{p}" for p in w["periods"]]
    return out


_row = st.fixed_dictionaries({
    "user": st.sampled_from(["a", "a", "a", "b", "c"]),
    "ts": st.tuples(st.integers(0, 40), st.sampled_from([0, 0, 0, 1, 999_999])),
    "x": values, "y": values,
    "cat": st.sampled_from(["u", "v", "w", None]),
    "eid": st.integers(0, 60)})


@st.composite
def histories(draw) -> list[dict]:
    """Events (ties, repeats of earlier rows, any order)."""
    rows = draw(st.lists(_row, min_size=draw(st.sampled_from([0, 10, 20, 30])), max_size=40))
    repeats = draw(st.lists(st.integers(0, 39), max_size=4))
    rows += [dict(rows[i]) for i in repeats if i < len(rows)]
    return [_timed(r) for r in rows]


@st.composite
def points(draw) -> list[dict]:
    """Evaluation points: known and unseen entities, an unseen category."""
    rows = draw(st.lists(_row, min_size=1, max_size=6))
    for r in rows:
        r["user"] = draw(st.sampled_from(["a", "a", "b", "zz"]))
        r["cat"] = draw(st.sampled_from(["u", "NEW", None]))
        r["ts"] = (draw(st.integers(0, 50) | st.integers(25, 45)),
                   draw(st.sampled_from([0, 1, 500_000])))
    return [_timed(r) for r in rows]


def _timed(r: dict) -> dict:
    sec, us = r["ts"]
    return {**r, "ts": T0 + timedelta(seconds=sec, microseconds=us)}


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA) if rows else pl.DataFrame(schema=SCHEMA)
