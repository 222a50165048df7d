"""An experiment router may hold variants on different plans: what it refuses, and why."""
from __future__ import annotations

import polars as pl
import pytest
from support import compose_cfg

from mlops.config.validate import feature_spec
from mlops.errors import ConfigError
from mlops.features.compile import compile_plan
from mlops.serving.router import ExperimentRouter
from mlops.serving.skew import ModelInfo

SCHEMA = {"transaction_id": pl.String, "user_id": pl.String, "event_ts": pl.Datetime("us"),
          "amount": pl.Float64, "merchant_category": pl.String, "country": pl.String,
          "device": pl.String, "channel": pl.String, "is_fraud": pl.Int8,
          "label_ts": pl.Datetime("us"), "tenure_days": pl.Float64}


def _plan(tmp_path, name, *extra):
    cfg = compose_cfg([f"features={name}", *extra], tmp_path)
    return compile_plan(feature_spec(cfg.features), SCHEMA)


def _router(p1, p2):
    info = lambda p, v: (object(), ModelInfo("m", v, p.spec_hash))  # noqa: E731
    return ExperimentRouter(key="ab", unit="user_id", assign=lambda ids: ["a"] * len(ids),
                            variants={"a": info(p1, "1"), "b": info(p2, "2")},
                            plans={"a": p1, "b": p2})


def test_mixed_plans_serve_in_realtime_only(tmp_path):
    v1, v2 = _plan(tmp_path, "fraud_v1"), _plan(tmp_path, "fraud_v2")
    _router(v1, v2).check(v1, mode="realtime")  # v2 reads no column v1 does not keep
    with pytest.raises(ConfigError) as err:
        _router(v1, v2).check(v1, mode="hybrid")
    assert err.value.key == "serving.mode" and v2.short_hash in str(err.value)


def test_a_variant_plan_reading_more_columns_is_refused(tmp_path):
    v1 = _plan(tmp_path, "fraud_v1")
    wide = _plan(tmp_path, "fraud_v2", "+features.raw=[tenure_days]")
    with pytest.raises(ConfigError) as err:
        _router(v1, wide).check(v1)
    assert err.value.key == "experiment.variants" and "tenure_days" in str(err.value)
    _router(wide, v1).check(wide)  # the other way round works: serve the wider plan
