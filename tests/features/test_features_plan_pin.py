"""Refactor guard: compiling the shipped specs gives the same plan, hash and features.

A model records ``spec_hash``; if it moved, every registered model would fail the
serving skew guard. The pins are on meaning: the spec hash, the plan's own canonical
description (``FeaturePlan.describe``: names, kinds, windows, columns, parsed
expressions) and the computed values. Never a library's text form of an expression,
which changes between releases (polars 2.2 printed expressions differently from 2.1
while every feature value stayed equal). Update a pin only for a deliberate change of
plan semantics (and bump ``PLAN_FORMAT`` then).

Moved deliberately by issue 21 (``PLAN_FORMAT`` 2): the spec hashes (the resolved spec
gained ``event_id`` and ``rules``), the descriptions (derived expressions as parsed
trees, the rules) and the shipped specs' frames (``sum``/``mean``/``std`` are exact now:
33, 30 and 19 of 424 values moved in the last bit, at most 2e-15 relative, measured
against the old rolling kernels). The rich spec's frames did not move (same values).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import polars as pl
import pytest
from omegaconf import OmegaConf
from support import compose_cfg

from mlops.data.fingerprint import frame_hash
from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_at, compute_features

# spec_hash, plan description digest, features frame hash (synthetic n_users=60, days=20, seed=3)
SHIPPED = {
    "fraud_v1": ("02d1133257860d6809fb3a472d36acb11bbf44b0cd280430ae935478c0efa273",
                 "dd74eebf7b04698291b185e86174a90bd90da8d801584a46da6b45bd2daa643e",
                 "db9351693516586821423f364c6ade8341546d03e6810cdc8052acec0bf694dd"),
    "fraud_v2": ("f9185feb4e9708cadfa015745eeae5916617c864c4fa5a7e6fff6785e2bc03a4",
                 "462c26fce46eed59d26d6e537ce655a8b0a451081284fe9c7828340a9edef6e1",
                 "e059951abfc415902528735f8e6d1eadbf14454400d31d0c06bb9ee0231726ed"),
}

# every source kind: groups, raw, categorical, all aggregations, a named window with a
# default, `last` of a string (categorical), a row-level derived feature used as a window
# column, derived features after windows, and a categorical derived feature
RICH = {
    "name": "rich", "version": 3, "entity": "user", "timestamp": "ts",
    "label": {"column": "y", "available_at": "y_ts", "task": "classification"},
    "groups": {"g": {"raw": ["amount"], "windows": [{"aggs": ["count"], "periods": ["1m"]}]}},
    "categorical": ["shop"],
    "windows": [
        {"column": "amount", "aggs": ["count", "sum", "mean", "min", "max", "std", "distinct",
                                      "last", "since_last"], "periods": ["5s", "30s"]},
        {"column": "amount", "aggs": ["mean"], "periods": ["10s"], "name": "m10", "default": -1.0},
        {"column": "shop", "aggs": ["distinct", "last"], "periods": ["20s"]},
        {"column": "double_amount", "aggs": ["max"], "periods": ["15s"]},
    ],
    "derived": [{"name": "ratio", "expr": "amount / (amount_mean_30s + 1)"},
                {"name": "double_amount", "expr": "amount * 2"},
                {"name": "shop_kind", "expr": "upper(shop)", "kind": "categorical"},
                {"name": "dbl", "expr": "ratio * 2 + double_amount_max_15s"}],
}
# spec_hash, plan description digest, offline frame hash, online (compute_at) frame hash
RICH_PIN = ("31a769224a762ff35658edca98b5e0ecc81ee0529ff6678044da8691bef19594",
            "4bc4ef880898606f0cda8112f4cd996ee4ec9327138f23bed31fdce06c6ebd01",
            "03b82a7632c551e5ce7ae313f0f970b471ee57bc325203b0cb17693de8c3e3f6",
            "2af51e9b21ad5413fe74e33766244f27e3a14d41b5357a606b97bf032c0a6c00")


def plan_digest(plan) -> str:
    """sha256 of the plan's canonical description (JSON with sorted keys)."""
    text = json.dumps(plan.describe(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_spec_plan_is_pinned(name, tmp_path):
    cfg = compose_cfg([f"features={name}"], tmp_path)
    events = generate(SyntheticParams(n_users=60, days=20, seed=3))
    plan = compile_plan(OmegaConf.to_object(cfg.features), events.schema)
    out = compute_features(plan, events, keep=["transaction_id"]).collect()
    assert (plan.spec_hash, plan_digest(plan), frame_hash(out)) == SHIPPED[name]


def _rich_events() -> pl.DataFrame:
    t0 = datetime(2024, 1, 1)
    rows = [("a", 0, 1.0, "s1"), ("a", 3, 4.0, "s2"), ("b", 4, None, "s1"), ("a", 9, 2.5, "s1"),
            ("b", 12, 7.0, "s3"), ("a", 12, 3.0, None), ("a", 40, 9.0, "s2"), ("b", 41, 1.5, "s2")]
    return pl.DataFrame({
        "user": [r[0] for r in rows],
        "ts": [t0 + timedelta(seconds=r[1]) for r in rows],
        "amount": pl.Series([r[2] for r in rows], dtype=pl.Float64),
        "shop": [r[3] for r in rows],
        "y": [0, 1, 0, 0, 1, 0, 1, 0],
        "y_ts": [t0 + timedelta(seconds=r[1] + 100) for r in rows],
    }).with_columns(pl.col("ts", "y_ts").cast(pl.Datetime("us")))


def test_rich_spec_plan_is_pinned():
    events = _rich_events()
    plan = compile_plan(RICH, events.schema)
    offline = compute_features(plan, events).collect()
    points = events.select("user", "ts", "amount", "shop").with_columns(
        pl.col("ts") + pl.duration(seconds=1))
    online = compute_at(plan, events, points).collect()
    got = (plan.spec_hash, plan_digest(plan), frame_hash(offline), frame_hash(online))
    assert got == RICH_PIN


def test_description_follows_meaning_not_spelling():
    """Spacing, keyword case and redundant parentheses leave the description alone; a
    changed operand moves it."""
    events = _rich_events()
    base = compile_plan(RICH, events.schema).describe()
    respelled = {**RICH, "derived": [{**d, "expr": "((" + d["expr"].replace(" ", "  ").replace("upper", "UPPER")
                                                      + "))"} for d in RICH["derived"]]}
    assert compile_plan(respelled, events.schema).describe()["after_windows"] == base["after_windows"]
    changed = {**RICH, "derived": [{**d, "expr": d["expr"].replace("+ 1", "+ 2")} for d in RICH["derived"]]}
    assert compile_plan(changed, events.schema).describe()["after_windows"] != base["after_windows"]
    assert base["after_windows"][0] == ["ratio", ["/", ["col", "amount"],
                                                  ["+", ["col", "amount_mean_30s"], ["number", "1"]]]]
