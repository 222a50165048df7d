"""A feature that reads the label (or when it became known) is a compile error naming it."""
from __future__ import annotations

import polars as pl
import pytest

from mlops.errors import FeatureSpecError
from mlops.features.compile import compile_plan

SCHEMA = {"u": pl.String, "t": pl.Datetime("us"), "a": pl.Float64, "y": pl.Int8,
          "known": pl.Datetime("us")}
BASE = {"name": "x", "entity": "u", "timestamp": "t",
        "label": {"column": "y", "available_at": "known"}, "raw": ["a"]}


@pytest.mark.parametrize("extra, key, feature", [
    ({"raw": ["a", "y"]}, "features.raw[1]", "y"),
    ({"derived": [{"name": "d", "expr": "y * 1.0"}]}, "features.derived[0].expr", "d"),
    ({"derived": [{"name": "d", "expr": "a + 1"}, {"name": "e", "expr": "d + y"}]},
     "features.derived[1].expr", "e"),
    ({"windows": [{"column": "a", "aggs": ["sum"], "periods": ["1d"]},
                  {"column": "y", "aggs": ["sum"], "periods": ["1d"]}]},
     "features.windows[1]", "y_sum_1d"),
    ({"derived": [{"name": "lag_h", "expr": "EXTRACT(hour FROM known) * 1.0"},
                  {"name": "r", "expr": "lag_h_mean_1d / 2"}],
      "windows": [{"column": "lag_h", "aggs": ["mean"], "periods": ["1d"]}]},
     "features.derived[0].expr", "lag_h"),   # the first offender in spec order is named
])
def test_label_reads_are_named(extra, key, feature):
    with pytest.raises(FeatureSpecError) as err:
        compile_plan({**BASE, **extra}, SCHEMA)
    assert err.value.key == key
    assert f'"{feature}"' in str(err.value) and "label" in str(err.value)


def test_features_that_do_not_read_the_label_compile():
    plan = compile_plan({**BASE, "derived": [{"name": "d", "expr": "a * 2"}],
                         "windows": [{"column": "a", "aggs": ["sum"], "periods": ["1d"]}]}, SCHEMA)
    assert plan.feature_names == ["a", "a_sum_1d", "d"]
