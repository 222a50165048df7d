"""Online/offline consistency: what the server logged vs what the offline engine computes.

Chronon measures it this way (``spark/.../stats/CompareMetrics.scala``): join the logged
feature values ("online", Chronon's *left*) with the offline backfill of the same
queries ("offline", *right*) and count per feature ``both_null``, ``online_null``
(Chronon ``left_null``), ``offline_null`` (``right_null``), ``mismatch`` (both present,
not equal) and, for numbers, the symmetric mean absolute percentage error ``smape``.
Here floats within ``tolerance`` (absolute, 1e-9 by default, as ``action=parity``) count
as equal, NaN equals NaN, categories compare exactly. ``mismatch_rate`` is
``(mismatch + online_null + offline_null) / compared``.

:func:`consistency_check` is ``action=consistency``'s pipeline: the logged rows (read by
:func:`mlops.monitoring.sources.logged_rows`) against the offline engine's features of the
same events, joined on the event id, or on (entity, timestamp) with tied events left out.
"""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from mlops.errors import DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features

_ON, _OFF = "__online", "__offline"
EVENT_KEY = "__event_id"  # the join key: the logged request id = the event id


def compare_features(online: pl.DataFrame, offline: pl.DataFrame, *, keys: list[str],
                     numeric: list[str], categorical: list[str], tolerance: float = 1e-9,
                     max_examples: int = 20) -> dict:
    """Per-feature consistency of ``online`` rows against ``offline`` rows joined on ``keys``.

    Both frames hold ``keys`` and the feature columns. Offline keys must be unique
    (an ambiguous key is an error for the caller to resolve). Returns ``rows`` (online),
    ``matched``, ``unmatched`` (online rows without an offline row: not compared),
    ``unmatched_examples`` and ``features``: ``{name: {type, compared, both_null,
    online_null, offline_null, mismatch, mismatch_rate, max_abs_diff, smape, examples}}``.

    >>> on = pl.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 2.0, None], "k": ["u", "v", "w"]})
    >>> off = pl.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 2.5, 3.0], "k": ["u", "v", "z"]})
    >>> r = compare_features(on, off, keys=["id"], numeric=["x"], categorical=["k"])
    >>> r["features"]["x"]["mismatch"], r["features"]["x"]["online_null"], r["features"]["k"]["mismatch"]
    (1, 1, 1)
    """
    feats = [*numeric, *categorical]
    for name, frame in (("online", online), ("offline", offline)):
        missing = [c for c in [*keys, *feats] if c not in frame.columns]
        if missing:
            raise DataError(f"the {name} rows lack column(s) {missing}", key=name,
                            fix="log and recompute the same feature plan")
    dup = offline.select(keys).is_duplicated()
    if dup.any():
        raise DataError(f"{int(dup.sum())} offline rows share a join key {keys}", key="keys",
                        fix="join on a unique event id (data.event_id)")
    left = online.select(*keys, *[pl.col(f).alias(f + _ON) for f in feats])
    right = offline.select(*keys, *[pl.col(f).alias(f + _OFF) for f in feats])
    joined = left.join(right.with_columns(pl.lit(True).alias("__found")), on=keys, how="left",
                       nulls_equal=False)
    found = joined["__found"].fill_null(False)
    matched = joined.filter(found)
    out = {"rows": online.height, "matched": matched.height,
           "unmatched": online.height - matched.height,
           "unmatched_examples": joined.filter(~found).select(keys).head(max_examples).to_dicts(),
           "tolerance": tolerance, "features": {}}
    for f in feats:
        out["features"][f] = _feature(matched, keys, f, f in numeric, tolerance, max_examples)
    return out


def _feature(df: pl.DataFrame, keys: list[str], f: str, is_num: bool, tol: float,
             max_examples: int) -> dict:
    a, b = pl.col(f + _ON), pl.col(f + _OFF)
    if is_num:
        a, b = a.cast(pl.Float64), b.cast(pl.Float64)
        both_nan = a.is_nan() & b.is_nan()
        diff = (a - b).abs()
        differs = ~both_nan & (diff.is_nan() | (diff > tol))
    else:
        a, b = a.cast(pl.String), b.cast(pl.String)
        differs = a != b
    flags = df.with_columns(
        (a.is_null() & b.is_null()).alias("__both_null"),
        (a.is_null() & b.is_not_null()).alias("__online_null"),
        (a.is_not_null() & b.is_null()).alias("__offline_null"),
        (a.is_not_null() & b.is_not_null() & differs).fill_null(False).alias("__mismatch"))
    counts = flags.select(pl.col("__both_null", "__online_null", "__offline_null",
                                 "__mismatch").sum()).row(0, named=True)
    res = {"type": "numeric" if is_num else "categorical", "compared": df.height,
           "both_null": counts["__both_null"], "online_null": counts["__online_null"],
           "offline_null": counts["__offline_null"], "mismatch": counts["__mismatch"],
           "max_abs_diff": None, "smape": None}
    bad = res["online_null"] + res["offline_null"] + res["mismatch"]
    res["mismatch_rate"] = bad / df.height if df.height else 0.0
    if is_num and df.height:
        finite = flags.filter(a.is_finite() & b.is_finite())
        stats = finite.select((a - b).abs().max().alias("max"),
                              pl.when((a.abs() + b.abs()) != 0)
                              .then(2 * (a - b).abs() / (a.abs() + b.abs()))
                              .otherwise(0.0).mean().alias("smape")).row(0, named=True)
        res["max_abs_diff"], res["smape"] = stats["max"], stats["smape"]
    wrong = flags.filter(pl.col("__online_null") | pl.col("__offline_null") | pl.col("__mismatch"))
    res["examples"] = (wrong.select(*keys, pl.col(f + _ON).alias("online"),
                                    pl.col(f + _OFF).alias("offline"))
                       .head(max_examples).to_dicts())
    return res


def offline_rows(plan: FeaturePlan, events: pl.LazyFrame, logged: pl.DataFrame,
                 event_id: str | None) -> pl.DataFrame:
    """The offline engine's features for the logged events (same data, same plan)."""
    ts = plan.timestamp
    lo = logged[ts].min() - timedelta(seconds=plan.max_period_seconds)
    hi = logged[ts].max()
    # every window of a logged event lies in [first - longest period, last]: exact
    events = events.filter((pl.col(ts) >= lo) & (pl.col(ts) <= hi))
    out = compute_features(plan, events, keep=[event_id] if event_id else [])
    if event_id:
        out = out.rename({event_id: EVENT_KEY}).with_columns(pl.col(EVENT_KEY).cast(pl.String))
    return out.collect()


def paired(logged: pl.DataFrame, offline: pl.DataFrame, plan: FeaturePlan,
           event_id: str | None) -> tuple[pl.DataFrame, pl.DataFrame, list[str], dict]:
    """(logged, offline, join keys, join description): by event id, or else by
    (entity, timestamp) with tied events left out and counted as ambiguous."""
    if event_id:
        keys, join = [EVENT_KEY], {"key": event_id, "ambiguous": 0}
    else:  # fall back to (entity, timestamp); tied events cannot be told apart
        keys = [plan.entity, plan.timestamp]
        tied = offline.filter(offline.select(keys).is_duplicated()).select(keys).unique()
        ambiguous = logged.join(tied, on=keys, how="semi").height
        join = {"key": f"{plan.entity}, {plan.timestamp}", "ambiguous": ambiguous}
        offline = offline.join(tied, on=keys, how="anti")
        logged = logged.join(tied, on=keys, how="anti")  # left out, counted as ambiguous
    offline = offline.join(logged.select(keys).unique(), on=keys, how="semi")
    return logged, offline, keys, join


def consistency_check(logged: pl.DataFrame, events: pl.LazyFrame, plan: FeaturePlan, *,
                      event_id: str | None, max_mismatch_rate: float,
                      max_examples: int) -> dict:
    """Logged (online) features of ``logged`` (``request_id`` = the event id, the entity and
    time under the plan's names, the features) against the offline engine's recomputation
    over ``events``: :func:`compare_features`' dict plus ``join``, ``failing`` (features
    whose mismatch rate is above ``max_mismatch_rate``), ``status`` and ``headline``."""
    cols = events.collect_schema().names()
    if event_id and event_id not in cols:
        raise DataError(f'the event id column "{event_id}" is not in the data', key="data.event_id",
                        fix="name the data's unique event id column, or null")
    logged = logged.rename({"request_id": EVENT_KEY})
    logged, offline, keys, join = paired(logged, offline_rows(plan, events, logged, event_id),
                                         plan, event_id)
    cmp = compare_features(logged, offline, keys=keys, numeric=plan.numeric,
                           categorical=plan.categorical, max_examples=max_examples)
    failing = {f: r["mismatch_rate"] for f, r in cmp["features"].items()
               if r["mismatch_rate"] > max_mismatch_rate}
    worst = max(cmp["features"].items(), key=lambda kv: kv[1]["mismatch_rate"], default=None)
    return {**cmp, "join": join, "failing": failing, "worst": worst,
            "status": "fail" if failing else ("warn" if cmp["unmatched"] else "ok"),
            "headline": _headline(cmp, failing, worst)}


def _headline(cmp: dict, failing: dict, worst) -> str:
    headline = (f"{len(failing)} of {len(cmp['features'])} features inconsistent online vs offline "
                f"(worst: {worst[0]} on {worst[1]['mismatch_rate']:.1%} of {cmp['matched']:,} events)"
                if failing else
                f"online = offline: {cmp['matched']:,} logged events x {len(cmp['features'])} "
                f"features match (max mismatch rate {worst[1]['mismatch_rate']:.2%})")
    if cmp["unmatched"]:
        headline += f"; {cmp['unmatched']:,} logged events not found offline"
    return headline
