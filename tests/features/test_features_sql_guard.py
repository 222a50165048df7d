"""Feature SQL is an expression language: no subquery, table function, file or network access.

The measured case of issue 13: ``amount IN (SELECT nope FROM read_csv('<file>'))`` made
the compiler read the file (its first line showed up in the error). Now the expression is
parsed by ``mlops.features.sql_guard`` and rejected before polars sees it.
"""
from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from mlops.errors import FeatureSpecError
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_features
from mlops.features.sql_guard import check_sql

SCHEMA = {"user_id": pl.String, "event_ts": pl.Datetime("us"), "amount": pl.Float64,
          "country": pl.String, "is_fraud": pl.Int8, "label_ts": pl.Datetime("us")}


def _spec(*derived: str) -> dict:
    return {"name": "t", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
            "categorical": ["country"], "label": {"column": "is_fraud", "available_at": "label_ts"},
            "derived": [{"name": f"d{i}", "expr": e} for i, e in enumerate(derived)]}


@pytest.fixture
def no_polars_sql(monkeypatch):
    """Fail loudly if an expression reaches polars' SQL parser (which would run it)."""
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        raise AssertionError(f"polars.sql_expr was called with {args}")
    monkeypatch.setattr(pl, "sql_expr", spy)
    return calls


def test_subquery_reading_a_local_file_is_rejected_before_polars(tmp_path, no_polars_sql):
    secret = tmp_path / "secret.csv"
    secret.write_text("TOP-SECRET-FIRST-LINE,b\n1,2\n")
    expr = f"amount IN (SELECT nope FROM read_csv('{secret}'))"
    with pytest.raises(FeatureSpecError) as err:
        compile_plan(_spec(expr), SCHEMA)
    text = str(err.value)
    assert err.value.key == "features.derived[0].expr"
    # names the expression (a long one is cut, so its start) and the part
    assert "amount IN (SELECT nope FROM read_csv(" in text and "SELECT is not allowed" in text
    assert "TOP-SECRET-FIRST-LINE" not in text
    assert no_polars_sql == []


@pytest.mark.parametrize("expr, part", [
    ("read_csv('/etc/passwd') IS NULL", "table function read_csv()"),
    ("amount + read_parquet('https://example.invalid/x.parquet')", "table function read_parquet()"),
    ("EXISTS (SELECT 1)", "EXISTS is not allowed"),
    ("(SELECT max(amount) FROM t)", "SELECT is not allowed"),
    ("amount; DROP TABLE t", "';' is not allowed"),
    ("amount -- hidden", "a comment is not allowed"),
    ("system('id')", "unknown function system()"),
    ("sum(amount)", "unknown function sum()"),  # an aggregate would change what a row means
    ("amount IN (country)", "inside IN (...) is not allowed"),
    ("CAST(amount AS blob)", "type 'blob' is not allowed"),
    ("amount + +* 2", "unexpected '*'"),
])
def test_rejected_expressions_name_the_offending_part(expr, part, no_polars_sql):
    with pytest.raises(FeatureSpecError) as err:
        compile_plan(_spec(expr), SCHEMA)
    assert part in str(err.value) and expr in str(err.value)
    assert no_polars_sql == []


def test_allowed_expressions_compile_and_compute_what_they_say():
    ts = datetime(2024, 1, 1, 10, 30)
    frame = pl.DataFrame({"user_id": ["a", "b", "c"], "event_ts": [ts, ts, ts],
                          "amount": [5.0, 20.0, None], "country": ["US", "fr", None],
                          "is_fraud": [0, 1, 0], "label_ts": [ts, ts, ts]},
                         schema=SCHEMA)
    exprs = ["CASE WHEN amount > 10 THEN 1 ELSE 0 END", "coalesce(amount, -1) * 2",
             "CAST(amount BETWEEN 1 AND 10 AS INTEGER)", "CAST(country IN ('US', 'DE') AS INT)",
             "CAST(country IS NULL AS INT)", "abs(-amount) + round(ln(exp(1.0)), 3)",
             "EXTRACT(HOUR FROM event_ts) + 0.5", "greatest(amount, 10) - least(amount, 10)"]
    plan = compile_plan(_spec(*exprs), SCHEMA)
    out = compute_features(plan, frame).collect().sort("user_id")
    # worked by hand for the rows (5, US), (20, fr), (null, null)
    assert out["d0"].to_list() == [0.0, 1.0, 0.0]
    assert out["d1"].to_list() == [10.0, 40.0, -2.0]
    assert out["d2"].to_list()[:2] == [1.0, 0.0]
    assert out["d3"].to_list() == [1.0, 0.0, None]
    assert out["d4"].to_list() == [0.0, 0.0, 1.0]
    assert out["d5"].to_list()[:2] == [6.0, 21.0]
    assert out["d6"].to_list() == [10.5, 10.5, 10.5]
    assert out["d7"].to_list()[:2] == [5.0, 10.0]


def test_allowed_columns_and_bad_inputs():
    check_sql("amount * 2", key="k", allowed_columns=["amount"])
    with pytest.raises(FeatureSpecError, match='unable to find column "amout".*Did you mean "amount"') as err:
        check_sql("amout * 2", key="experiment.outcomes[0]", allowed_columns=["amount", "country"])
    assert err.value.key == "experiment.outcomes[0].expr"
    for bad in ("", "   ", None, "x" * 10_001):
        with pytest.raises(FeatureSpecError):
            check_sql(bad, key="k")
    with pytest.raises(FeatureSpecError, match="nesting deeper"):
        check_sql("(" * 150 + "1" + ")" * 150, key="k")
