"""Compile errors for bad specs are the documented, actionable messages."""
from __future__ import annotations

import polars as pl
import pytest

from mlops.errors import ConfigError, FeatureSpecError
from mlops.features.compile import compile_plan, plan_hash
from mlops.features.spec import parse_spec, resolve

SCHEMA = {"user_id": pl.String, "event_ts": pl.Datetime("us"), "amount": pl.Float64,
          "country": pl.String, "is_fraud": pl.Int8, "label_ts": pl.Datetime("us")}


def _compile(**spec):
    return compile_plan({"name": "t", "entity": "user_id", "timestamp": "event_ts", **spec}, SCHEMA)


def _err(**spec) -> FeatureSpecError:
    with pytest.raises(FeatureSpecError) as info:
        _compile(**spec)
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2
    return info.value


def test_unknown_column_suggests_the_close_name():
    e = _err(raw=["amout"])
    assert e.key == "features.raw[0]"
    assert 'unable to find column "amout"' in str(e) and 'Did you mean "amount"?' in str(e)


def test_unknown_column_in_sql_expression():
    e = _err(raw=["amount"], derived=[{"name": "x", "expr": "amount / cuntry"}])
    assert e.key == "features.derived[0].expr" and 'Did you mean "country"?' in str(e)


def test_bad_sql_syntax():
    e = _err(derived=[{"name": "x", "expr": "amount +* 2"}])
    assert e.key == "features.derived[0].expr" and "invalid SQL expression" in str(e)


def test_cycle_is_named():
    e = _err(derived=[{"name": "a", "expr": "b + 1"}, {"name": "b", "expr": "c * 2"},
                      {"name": "c", "expr": "a - amount"}])
    assert "cycle: a -> b -> c -> a" in str(e)


@pytest.mark.parametrize("period", ["-1d", "0h", "5 days", "1y", ""])
def test_bad_period(period):
    e = _err(windows=[{"column": "amount", "aggs": ["sum"], "periods": [period]}])
    assert e.key == "features.windows[0].periods" and "positive integer" in str(e)


def test_unknown_aggregation_lists_valid_ones():
    e = _err(windows=[{"column": "amount", "aggs": ["median"], "periods": ["1d"]}])
    assert e.key == "features.windows[0].aggs" and "'median'" in str(e) and "since_last" in str(e)


def test_numeric_aggregation_of_a_string_column():
    e = _err(windows=[{"column": "country", "aggs": ["mean"], "periods": ["1d"]}])
    assert "needs a numeric column" in str(e)


def test_raw_string_column_must_be_categorical():
    e = _err(raw=["country"])
    assert "list it under `categorical`" in str(e)


def test_duplicate_feature_names_name_both_places():
    e = _err(raw=["amount"], derived=[{"name": "amount", "expr": "amount * 2"}])
    assert "defined twice" in str(e) and "features.raw[0]" in str(e)


def test_unknown_key_in_spec_dict():
    with pytest.raises(FeatureSpecError, match="unknown key"):
        parse_spec({"name": "t", "windowz": []})


def test_empty_spec():
    e = _err()
    assert "defines no features" in str(e)


def test_hash_is_stable_and_semantic():
    a = {"name": "t", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
         "windows": [{"column": "amount", "aggs": ["sum"], "periods": ["1h"]}]}
    h1 = _compile(**{k: v for k, v in a.items() if k != "name"}).spec_hash
    assert h1 == compile_plan(a, SCHEMA).spec_hash
    # moving a feature into a group does not change semantics, nor the hash
    grouped = {"name": "t", "entity": "user_id", "timestamp": "event_ts",
               "groups": {"g": {"raw": ["amount"], "windows": a["windows"]}}}
    assert compile_plan(grouped, SCHEMA).spec_hash == h1
    changed = {**a, "windows": [{"column": "amount", "aggs": ["sum"], "periods": ["2h"]}]}
    assert compile_plan(changed, SCHEMA).spec_hash != h1
    # pinned: the hash must be identical on any machine and polars version
    # (changing it orphans every registered model through the skew guard)
    assert plan_hash(resolve(parse_spec(a))) == h1 == (
        "d3cf13b920b256782c87dc9488ef84e90d277dd1096f1c2b1957f47c2360b16c")


def test_derived_on_window_is_post_and_row_level_feeds_windows():
    plan = _compile(raw=["amount"], windows=[{"column": "log_amt", "aggs": ["mean"], "periods": ["1d"]}],
                    derived=[{"name": "log_amt", "expr": "ln(amount + 1)"},
                             {"name": "z", "expr": "log_amt - log_amt_mean_1d"}])
    assert [n for n, _ in plan.row_exprs] == ["amount", "log_amt"]
    assert [n for n, _ in plan.post_exprs] == ["z"]
