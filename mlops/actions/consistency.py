"""``action=consistency``: online/offline consistency of the features the server logged.

Reads the prediction log (the features each request was scored with), recomputes the
features of the same events with the offline engine over the configured data, using
the plan the model carries, joins on the event id (``data.event_id`` = the request id
the client sent; without one, on entity + timestamp) and reports per feature the
mismatch rate and the largest difference (``consistency.json`` + ``consistency.html``).
Above ``monitoring.consistency.max_mismatch_rate`` it alerts: exit 3 and a record in
``paths.home/alerts.jsonl``.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.registry_access import model_name, open_registry
from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.home import open_private
from mlops.monitoring.consistency import compare_features
from mlops.serving.prediction_log import count_log_files, scan_prediction_log

_ID = "__event_id"


def logged_rows(log_dir: str, plan: FeaturePlan) -> tuple[pl.DataFrame, dict]:
    """Rows of the prediction log scored with ``plan``: id, entity, time, features."""
    log = scan_prediction_log(log_dir)  # parquet parts + journal not yet compacted
    if log is None:
        raise DataError(f"no prediction log under {log_dir}", key="serving.log_dir",
                        fix="serve traffic first (action=serve or action=replay)")
    total = log.select(pl.len()).collect().item()
    rows = (log.filter(pl.col("plan_hash") == plan.spec_hash)
            .select(pl.col("request_id").alias(_ID), pl.col("entity").alias(plan.entity),
                    pl.col("event_ts").alias(plan.timestamp), "served_by", "features")
            .unnest("features").collect())
    info = {"path": log_dir, "files": count_log_files(log_dir), "rows": total, "plan_rows": rows.height,
            "other_plan_rows": total - rows.height}
    return rows, info


def offline_rows(ctx: RunContext, plan: FeaturePlan, logged: pl.DataFrame,
                 event_id: str | None) -> pl.DataFrame:
    """The offline engine's features for the logged events (same data, same plan)."""
    ts, events = plan.timestamp, ctx.scan_events()
    lo = logged[ts].min() - timedelta(seconds=plan.max_period_seconds)
    hi = logged[ts].max()
    # every window of a logged event lies in [first - longest period, last]: exact
    events = events.filter((pl.col(ts) >= lo) & (pl.col(ts) <= hi))
    keep = [event_id] if event_id else []
    out = compute_features(plan, events, keep=keep)
    if event_id:
        out = out.rename({event_id: _ID}).with_columns(pl.col(_ID).cast(pl.String))
    return out.collect()


def run(ctx: RunContext) -> ActionResult:
    """Compare logged (online) features with the offline recomputation; alert above the limit."""
    t0 = time.perf_counter()
    cc = ctx.cfg.monitoring.consistency
    limit = float(cc.max_mismatch_rate)
    if not 0.0 <= limit <= 1.0:
        raise ConfigError(f"must be in [0, 1]; got {limit}",
                          key="monitoring.consistency.max_mismatch_rate",
                          fix="give a share of rows such as 0.001")
    reg, name = open_registry(ctx), model_name(ctx)
    alias = str(ctx.cfg.monitoring.alias)
    mv = reg.get_version(name, alias)  # no model needed: only the plan it carries
    plan = ctx.model_plan(mv)
    log_dir = ctx.cfg.serving.log_dir or str(ctx.home / "predictions")
    logged, log_info = logged_rows(str(log_dir), plan)
    if logged.height == 0:
        raise DataError(f"the prediction log holds no rows scored with plan {plan.short_hash} "
                        f"({log_info['rows']} rows of other plans)", key="monitoring.alias",
                        fix="serve traffic with this model first, or pick the alias that served it")
    event_id = ctx.event_id
    cols = ctx.scan_events().collect_schema().names()
    if event_id and event_id not in cols:
        raise DataError(f'the event id column "{event_id}" is not in the data', key="data.event_id",
                        fix="name the data's unique event id column, or null")
    logged, offline, keys, join = _paired(logged, offline_rows(ctx, plan, logged, event_id),
                                          plan, event_id)
    cmp = compare_features(logged, offline, keys=keys, numeric=plan.numeric,
                           categorical=plan.categorical, max_examples=int(cc.max_examples))
    failing = {f: r["mismatch_rate"] for f, r in cmp["features"].items()
               if r["mismatch_rate"] > limit}
    worst = max(cmp["features"].items(), key=lambda kv: kv[1]["mismatch_rate"], default=None)
    status = "fail" if failing else ("warn" if cmp["unmatched"] else "ok")
    headline = _headline(cmp, failing, worst)
    alert = _alert(ctx, name, mv.version, failing, limit) if failing else None
    result = {"status": status, "headline": headline,
              "model": {"name": name, "version": mv.version, "alias": alias},
              "plan": {"name": plan.name, "hash": plan.spec_hash}, "log": log_info,
              "join": {**join, "matched": cmp["matched"], "unmatched": cmp["unmatched"],
                       "unmatched_examples": cmp["unmatched_examples"]},
              "tolerance": cmp["tolerance"], "max_mismatch_rate": limit,
              "failing": failing, "features": cmp["features"], "alert": alert,
              "duration_s": round(time.perf_counter() - t0, 3)}
    write_report(ctx, "consistency", result, title=f"Online/offline consistency: {name} v{mv.version}",
                 context=_display(result))
    return ActionResult(result=result, exit_code=3 if failing else 0,
                        metrics={"max_mismatch_rate": worst[1]["mismatch_rate"] if worst else 0.0,
                                 "features_failing": float(len(failing))})


def _paired(logged: pl.DataFrame, offline: pl.DataFrame, plan, event_id: str | None):
    """(logged, offline, join keys, join description): by event id, or else by
    (entity, timestamp) with tied events left out and counted as ambiguous."""
    if event_id:
        keys, join = [_ID], {"key": event_id, "ambiguous": 0}
    else:  # fall back to (entity, timestamp); tied events cannot be told apart
        keys = [plan.entity, plan.timestamp]
        tied = offline.filter(offline.select(keys).is_duplicated()).select(keys).unique()
        ambiguous = logged.join(tied, on=keys, how="semi").height
        join = {"key": f"{plan.entity}, {plan.timestamp}", "ambiguous": ambiguous}
        offline = offline.join(tied, on=keys, how="anti")
        logged = logged.join(tied, on=keys, how="anti")  # left out, counted as ambiguous
    offline = offline.join(logged.select(keys).unique(), on=keys, how="semi")
    return logged, offline, keys, join


def _headline(cmp: dict, failing: dict, worst) -> str:
    headline = (f"{len(failing)} of {len(cmp['features'])} features inconsistent online vs offline "
                f"(worst: {worst[0]} on {worst[1]['mismatch_rate']:.1%} of {cmp['matched']:,} events)"
                if failing else
                f"online = offline: {cmp['matched']:,} logged events x {len(cmp['features'])} "
                f"features match (max mismatch rate {worst[1]['mismatch_rate']:.2%})")
    if cmp["unmatched"]:
        headline += f"; {cmp['unmatched']:,} logged events not found offline"
    return headline


def _alert(ctx: RunContext, name: str, version, failing: dict, limit: float) -> dict:
    record = {"time": datetime.now(timezone.utc).isoformat(), "model": name, "version": version,
              "reasons": [f"online/offline inconsistency: {f} mismatches on {r:.2%} of events "
                          f"(limit {limit:.2%})" for f, r in sorted(failing.items())],
              "run": str(ctx.output_dir), "source": "consistency"}
    with open_private(ctx.home / "alerts.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return {"record": str(ctx.home / "alerts.jsonl"), "reasons": record["reasons"]}


def _display(result: dict) -> dict:
    from mlops.reports import svg
    rows = [{"feature": f, **{k: r[k] for k in ("type", "compared", "mismatch", "online_null",
                                               "offline_null", "both_null", "mismatch_rate",
                                               "max_abs_diff", "smape")}}
            for f, r in sorted(result["features"].items(), key=lambda kv: -kv[1]["mismatch_rate"])]
    chart = svg.bar_chart([(r["feature"], r["mismatch_rate"]) for r in rows],
                          xlabel="share of logged events whose value differs offline",
                          ylabel="feature",
                          threshold=(result["max_mismatch_rate"], "alert threshold"))
    examples = [{"feature": f, **e} for f, r in result["features"].items() for e in r["examples"]]
    cards = [{"label": "events compared", "value": result["join"]["matched"]},
             {"label": "features failing", "value": f"{len(result['failing'])} / {len(rows)}",
              "status": "fail" if result["failing"] else "ok"},
             {"label": "not found offline", "value": result["join"]["unmatched"],
              "status": "warn" if result["join"]["unmatched"] else "ok"}]
    return {"feature_rows": rows, "chart": chart, "examples": examples[:100], "cards": cards}
