"""Training-serving skew, closed: the same events scored five ways give the same answers.

Batch scoring (``score_events``, the path of ``action=score``), realtime one record per
request and 40 per request, hybrid one and 40, each through the real server (uvicorn on
127.0.0.1, HTTP, stopped at the end of the block), on a spec with every aggregate, a
window over a derived column, row-level and after-window derived features (CASE,
coalesce/nullif, ln/abs, a categorical CASE) and hostile but valid values: zeros,
negatives, 1e300, two 1e308 whose window sum overflows, ties, exact duplicates, an
unseen category. Probabilities agree within 1e-12 (a gradient-boosted model: one flipped
split would show) and the logged features are batch scoring's, bit for bit, under both
``rules.nonfinite`` rules.

The realtime servers start empty and load their history the documented way
(``materialize`` in realtime mode as of the first scored time, kept by retention); the
hybrid servers materialize the windows as of each group's time, as a batch job would
before the group's requests (every group shares one timestamp, so one ``as_of`` serves it).
"""
from __future__ import annotations

import math
import random
from datetime import timedelta

import httpx
import numpy as np
import polars as pl
import pytest
from live_server import live_server
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops.data.synthetic import SyntheticParams, generate
from mlops.features.compile import compile_plan
from mlops.features.online import materialize
from mlops.serving.batch import score_events
from mlops.serving.prediction_log import scan_prediction_log
from mlops.serving.settings import ServingSettings, StoreSettings
from mlops.serving.skew import ModelInfo
from mlops.serving.state import open_state
from mlops.training.table import labelled_table

pytestmark = pytest.mark.slow

SPEC = {"name": "skew", "entity": "user_id", "timestamp": "event_ts", "raw": ["amount"],
        "label": {"column": "is_fraud"},
        "categorical": ["merchant_category", "country", "channel"],
        "windows": [
            {"column": "amount", "aggs": ["count", "sum", "mean", "min", "max", "std"],
             "periods": ["1h", "1d"]},
            {"column": "merchant_category", "aggs": ["distinct", "last"], "periods": ["1d"]},
            {"column": "signed", "aggs": ["sum", "mean"], "periods": ["6h"]},
            {"aggs": ["since_last"], "periods": ["2d"], "default": 172800.0}],
        "derived": [
            {"name": "signed", "expr": "CASE WHEN channel = 'online' THEN -amount ELSE amount END"},
            {"name": "log_abs", "expr": "ln(abs(amount) + 1)"},
            {"name": "share", "expr": "amount / (amount_sum_1d + 1)"},
            {"name": "spread",
             "expr": "coalesce((amount_max_1d - amount_min_1d) / nullif(amount_std_1d, 0), -1)"},
            {"name": "size", "expr": "CASE WHEN amount > 100 THEN 'big' ELSE 'small' END",
             "kind": "categorical"}]}
GROUPS, PER_GROUP = 5, 40
COLUMNS = ["transaction_id", "user_id", "event_ts", "amount", "merchant_category", "country",
           "channel", "is_fraud"]


def _hostile(df: pl.DataFrame, rng: random.Random) -> pl.DataFrame:
    """Zeros, negatives and 1e300 among the amounts; a label the features explain in part
    (larger amounts, mostly), so the model's scores spread."""
    amounts = [rng.choice([0.0, -a, 1e300]) if rng.random() < 0.15 else a for a in df["amount"]]
    labels = [int((a > 40) != (rng.random() < 0.2)) for a in amounts]
    return df.with_columns(pl.Series("amount", amounts), pl.Series("is_fraud", labels, dtype=pl.Int8))


def _data():
    """(history, the scored groups, every event): groups of 40 events sharing a time."""
    rng = random.Random(5)
    hist = _hostile(generate(SyntheticParams(n_users=25, days=4, seed=9, tx_per_user_day=6))
                    .select(COLUMNS), rng)
    end = hist["event_ts"].max()
    first = end + timedelta(minutes=20)
    # two 1e308 for one user just before the first group: its windows sum past the float range
    big = hist.head(2).with_columns(pl.lit("u_over").alias("user_id"), pl.lit(1e308).alias("amount"),
                                    pl.Series("event_ts", [first - timedelta(minutes=30),
                                                           first - timedelta(minutes=20)]),
                                    pl.Series("transaction_id", ["over-1", "over-2"]))
    ties = hist.sample(20, seed=1).with_columns(  # same user and time, other amounts
        (pl.col("amount") + 1.5).alias("amount"), (pl.col("transaction_id") + "-tie"))
    dups = hist.sample(10, seed=2).with_columns(pl.col("transaction_id") + "-dup")  # exact copies
    hist = pl.concat([hist, big, ties, dups]).sort("event_ts", maintain_order=True)
    groups = []
    for k in range(GROUPS):
        g = _hostile(hist.sample(PER_GROUP, seed=10 + k, shuffle=True), rng).with_columns(
            pl.lit(first + timedelta(minutes=17 * k)).alias("event_ts"),
            pl.Series("transaction_id", [f"g{k}-{i}" for i in range(PER_GROUP)]))
        g = g.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("never-seen"))
                           .otherwise(pl.col("merchant_category")).alias("merchant_category"))
        if k == 0:
            g = g.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("u_over"))
                               .otherwise(pl.col("user_id")).alias("user_id"))
        g = pl.concat([g.head(PER_GROUP - 1), g.head(1).with_columns(pl.lit(f"g{k}-dup").alias("transaction_id"))])
        groups.append(g)  # the last record duplicates the first exactly
    return hist, groups, pl.concat([hist, *groups])


def _model(plan, hist: pl.DataFrame):
    table = labelled_table(plan, hist.lazy()).frame  # under reject: scorable events only
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), plan.categorical),
                             ("num", "passthrough", plan.numeric)])
    model = Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(max_iter=40, random_state=0))])
    return model.fit(table.select(plan.feature_names), table["is_fraud"].to_numpy())


def _record(row: dict, plan) -> dict:
    rec = {c: row[c] for c in plan.source_columns}
    rec[plan.timestamp] = row[plan.timestamp].isoformat()
    rec["request_id"] = row["transaction_id"]
    return rec


def _serve(plan, model, info, hist, groups, events, tmp, mode: str, per_request: int) -> tuple[dict, dict]:
    """Every group through a real server of ``mode``: (answers, logged rows) by event id."""
    settings = ServingSettings(mode=mode, invalid_record_policy="default", max_abs_value=None,
                               log_dir=str(tmp / "log"), store=StoreSettings(path=str(tmp / "s.sqlite")))
    state = open_state(plan, model, info, settings, source_schema=events.schema,
                       event_id="transaction_id", history=hist.select(list(plan.source_columns)))
    assert state.backends.usable == ("frames", "rows")  # the probe found the backends equal
    first = groups[0]["event_ts"][0]
    if mode == "realtime":  # the documented way to load history: kept by retention
        materialize(plan, hist, state.store, mode="realtime", as_of=first)
    answers = {}
    with live_server(state) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for g in groups:
            if mode == "hybrid":  # the batch job, as of this group's time
                materialize(plan, events.filter(pl.col("event_ts") < g["event_ts"][0]), state.store,
                            as_of=g["event_ts"][0])
            recs = [_record(r, plan) for r in g.to_dicts()]
            for i in range(0, len(recs), per_request):
                r = client.post("/predict", json={"records": recs[i:i + per_request]})
                assert r.status_code == 200, r.text
                body = r.json()
                answers.update(zip(body["request_ids"], zip(body["probabilities"], body["decisions"])))
    logged = scan_prediction_log(tmp / "log").collect()
    return answers, {r["request_id"]: r for r in logged.iter_rows(named=True)}


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) or math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    return a == b


@pytest.mark.parametrize("rule", ["missing", "reject"])
def test_batch_realtime_and_hybrid_answer_the_same_events_alike(rule, tmp_path):
    hist, groups, events = _data()
    plan = compile_plan({**SPEC, "rules": {"nonfinite": rule}}, events.schema)
    assert plan.backends == ("frames", "rows")
    model = _model(plan, hist)
    info = ModelInfo("skew", "1", plan.spec_hash)
    score_events(plan, model, info, events, tmp_path / "batch.parquet", keep=["transaction_id"],
                 include_features=True)
    batch = {r["transaction_id"]: r for r in pl.read_parquet(tmp_path / "batch.parquet").iter_rows(named=True)}
    scored = [t for g in groups for t in g["transaction_id"]]
    unscorable = [t for t in scored if batch[t]["probability"] is None]
    assert (len(unscorable) > 0) == (rule == "reject")  # u_over's overflowing windows
    probs = np.array([batch[t]["probability"] for t in scored if t not in unscorable])
    assert probs.std() > 0.1  # the model answers differently for different events
    for mode in ("realtime", "hybrid"):
        for per_request in (1, PER_GROUP):
            tmp = tmp_path / f"{mode}-{per_request}"
            answers, logged = _serve(plan, model, info, hist, groups, events, tmp, mode, per_request)
            assert set(answers) == set(scored) == set(logged)
            diffs = []
            for t in scored:
                want, (got, decision) = batch[t]["probability"], answers[t]
                if want is None:  # unscorable by the plan's rule: answered without the model
                    assert got is None and decision == "abstain", (mode, per_request, t)
                else:
                    assert decision == "model" and abs(got - want) <= 1e-12, (mode, per_request, t, got, want)
                assert logged[t]["probability"] == got
                for name in plan.feature_names:
                    w, g = batch[t][name], logged[t]["features"][name]
                    if not _same(w, g):
                        diffs.append((t, name, w, g))
            assert diffs == [], (mode, per_request, diffs[:5])
