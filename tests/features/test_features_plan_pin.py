"""Refactor guard: compiling the shipped specs gives the same plan, hash and features.

A model records ``spec_hash``; if it moved, every registered model would fail the
serving skew guard. The pins are on meaning: the spec hash, the plan's own canonical
description (``FeaturePlan.describe``: names, kinds, windows, columns, parsed
expressions) and the computed values. Never a library's text form of an expression,
which changes between releases (polars 2.2 printed expressions differently from 2.1
while every feature value stayed equal). Update a pin only for a deliberate change of
plan semantics (and bump ``PLAN_FORMAT`` then).
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
    "fraud_v1": ("94f825648dbf786bfe0f0172b6e73a529e09eb76b659db7ee600df8bc9f7c295",
                 "57ad9d46bd21cba597be7a6e6d0d81dc69a08f319b2d54ba17283872cc2eea1c",
                 "e317591768a88c1447abd260c35da18f6e2569f789f9ea4be92707b828d52fc6"),
    "fraud_v2": ("7cf5c5866d3cf48c43bd72245d77c605ff10bb116d00006be92430afb70f22d5",
                 "af96d58e2f645a5ae154ab80bfddfe0f3d2888e68e82778c4f8e192742c02d6c",
                 "d7633b5fa217258abb65910b14cd5477ae295f80d88be1614f3e4895c7e1c3b5"),
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
RICH_PIN = ("2abfbacbf6636e25440aca686a86c47348252936b1247fd78e9742e2e25f59e8",
            "9f03d978bb894f540c9a3f168a89e6ce01477f0789bbf652b3c70abe423e60df",
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
    """Spacing and keyword case leave the description alone; a changed operand moves it."""
    events = _rich_events()
    base = compile_plan(RICH, events.schema).describe()
    respelled = {**RICH, "derived": [{**d, "expr": d["expr"].replace(" ", "  ").replace("upper", "UPPER")}
                                     for d in RICH["derived"]]}
    assert compile_plan(respelled, events.schema).describe()["after_windows"] == base["after_windows"]
    changed = {**RICH, "derived": [{**d, "expr": d["expr"].replace("+ 1", "+ 2")} for d in RICH["derived"]]}
    assert compile_plan(changed, events.schema).describe()["after_windows"] != base["after_windows"]
    assert base["after_windows"][0] == ["ratio", ["amount", "/", "(", "amount_mean_30s", "+", "1", ")"]]
