"""The SQL guard's parser: a typed tree, built without recursion, bounded, read by polars as
we read it; hostile expressions are one-line errors naming the feature (issue 23, item 4).
"""
from __future__ import annotations

import inspect
import sys
import time
from datetime import datetime

import polars as pl
import pytest
from polars.exceptions import PanicException

from mlops.errors import FeatureSpecError
from mlops.features.backends import compare_backends
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_features
from mlops.features.sql_guard import MAX_DEPTH, MAX_NODES, parse_sql
from mlops.features.sql_tree import Binary, Column, Literal, Unary, describe_tree, postorder, render_sql

SCHEMA = {"user": pl.String, "ts": pl.Datetime("us"), "value": pl.Float64, "b": pl.Float64,
          "s": pl.String}


def _spec(expr: str) -> dict:
    return {"name": "t", "entity": "user", "timestamp": "ts", "raw": ["value"],
            "derived": [{"name": "hostile", "expr": expr}]}


def _compile_error(expr: str) -> str:
    with pytest.raises(FeatureSpecError) as err:
        compile_plan(_spec(expr), SCHEMA)
    text = str(err.value)
    assert err.value.key == "features.derived[0].expr" and 'feature "hostile"' in text
    assert "\n" not in text and len(text) < 600  # one line, not the whole expression
    return text


@pytest.mark.parametrize("expr, what", [
    ("- " * 2000 + "value", f"nesting deeper than {MAX_DEPTH} levels"),
    ("NOT " * 1200 + "value", f"nesting deeper than {MAX_DEPTH} levels"),
    ("(" * 150 + "value" + ")" * 150, f"nesting deeper than {MAX_DEPTH} levels"),
    (" + ".join(["value"] * 1000), f"more than {MAX_NODES} nodes"),
    ("greatest()", "greatest() takes 1 or more argument(s); got 0"),
    ("least()", "least() takes 1 or more argument(s); got 0"),
    ("value::decimal(38,99)", "decimal(38,99) is not a valid type"),
    ("CAST(value AS numeric(39, 2))", "numeric(39,2) is not a valid type"),
    ("substr(s)", "substr() takes 2 to 3 argument(s)"),
    ("value BETWEEN 1", "BETWEEN without its AND"),
    ("CASE WHEN value > 1 THEN 2", "CASE without END"),
])
def test_hostile_expressions_are_one_line_errors_without_recursion(expr, what):
    # a recursive parser needs a Python frame per level: allow 60 above the caller's
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        t0 = time.perf_counter()
        text = _compile_error(expr)
    finally:
        sys.setrecursionlimit(limit)
    assert what in text
    assert time.perf_counter() - t0 < 5  # bounded long before polars' cubic translation


def test_the_limits_themselves_are_accepted_and_both_backends_evaluate_them():
    chain = " + ".join(["value"] * ((MAX_NODES + 1) // 2))  # 128 terms: 255 nodes
    deep = "- " * (MAX_DEPTH - 1) + "value"
    plan = compile_plan({**_spec(chain), "derived": [{"name": "c", "expr": chain},
                                                     {"name": "d", "expr": deep}]}, SCHEMA)
    assert plan.backends == ("frames", "rows")
    assert isinstance(plan.derived[0].tree, Binary) and len(postorder(plan.derived[0].tree)) == 255
    frame = pl.DataFrame({"user": ["a", "b"], "ts": [datetime(2024, 1, 1)] * 2,
                          "value": [0.1, -2.5], "b": [0.0, 1.0], "s": ["x", "y"]}, schema=SCHEMA)
    assert compare_backends(plan, frame, frame) == []
    out = compute_features(plan, frame).collect().sort("user")
    assert out["c"].to_list() == [_left_sum(0.1, 128), -2.5 * 128]
    assert out["d"].to_list() == [-0.1, 2.5]  # 63 minus signs


def test_a_polars_panic_is_a_feature_spec_error_naming_the_feature(monkeypatch):
    """``PanicException`` is a BaseException: ``except Exception`` would let it through."""
    def panic(*args, **kwargs):
        raise PanicException("attempt to subtract with overflow")
    monkeypatch.setattr(pl, "sql_expr", panic)
    text = _compile_error("value + 1")
    assert "attempt to subtract with overflow" in text


def test_the_tree_is_typed_and_describes_meaning():
    tree = parse_sql("-value * 2 + b", key="k")
    assert tree == Binary("+", Binary("*", Unary("-", Column("value")), Literal("number", "2")),
                          Column("b"))
    assert describe_tree(parse_sql("((value))  *  2", key="k")) == \
        describe_tree(parse_sql("value*2", key="k"))


def _left_sum(x: float, n: int) -> float:
    """x + x + ... (n terms), left to right as SQL adds."""
    out = x
    for _ in range(n - 1):
        out += x
    return out


# polars' own parse of the text and of our rendering must agree on every one of these
PRECEDENCE = ["value + b * 2 - 1", "value - b - 1", "value / b * 2", "-value * b",
              "-value + b", "NOT value > 1 AND b < 2 OR value = b",
              "value > 1 = (b > 2)", "value BETWEEN b AND 2 AND value > 0",
              "value NOT BETWEEN -1 AND 1 OR b IS NULL", "s || 'x' || s", "value % 3 * 2",
              "CASE WHEN value > b THEN value - b ELSE b - value END * 2",
              "value IN (1, 2.5) OR NOT b IN (0)", "CAST(value AS INT) + 1 = 2",
              "coalesce(value, b, 0) / (b + 1)", "value * -b", "-(value - b) - -b",
              "value::int::varchar || s"]


@pytest.mark.parametrize("expr", PRECEDENCE)
def test_polars_reads_our_rendering_as_it_reads_the_text(expr):
    frame = pl.DataFrame({"user": ["a"] * 6, "ts": [None] * 6,
                          "value": [0.0, 1.0, -2.5, None, 3.0, 1.0],
                          "b": [1.0, 1.0, 2.0, 0.5, None, -1.0],
                          "s": ["x", None, "y", "z", "", "x"]}, schema=SCHEMA)
    tree = parse_sql(expr, key="k")
    assert parse_sql(render_sql(tree), key="k") == tree  # the rendering parses back
    want = frame.select(pl.sql_expr(expr).alias("v"))
    got = frame.select(pl.sql_expr(render_sql(tree)).alias("v"))
    assert got.equals(want), (render_sql(tree), got, want)
