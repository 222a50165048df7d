"""``action=consistency``: online/offline consistency of the features the server logged.

Reads the prediction log (the features each request was scored with), recomputes the
features of the same events with the offline engine over the configured data, using
the plan the model carries, joins on the event id (``data.event_id`` = the request id
the client sent; without one, on entity + timestamp) and reports per feature the
mismatch rate and the largest difference (``consistency.json`` + ``consistency.html``;
the pipeline is :func:`mlops.monitoring.consistency.consistency_check`). Above
``monitoring.consistency.max_mismatch_rate`` it alerts: exit 3 and a record in
``paths.home/alerts.jsonl``.
"""
from __future__ import annotations

import time

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import DataError
from mlops.monitoring.alerts import append_alert
from mlops.monitoring.consistency import consistency_check
from mlops.monitoring.sources import logged_rows
from mlops.reports.views.consistency import consistency_display
from mlops.serving.prediction_log import count_log_files


def run(ctx: RunContext) -> ActionResult:
    """Compare logged (online) features with the offline recomputation; alert above the limit."""
    t0, mc = time.perf_counter(), ctx.cfg.monitoring
    limit, name = mc.consistency.max_mismatch_rate, ctx.model_name
    mv = ctx.registry().get_version(name, mc.alias)  # no model needed: only the plan it carries
    plan = ctx.model_plan(mv)
    log_dir = str(ctx.log_dir)
    logged, total = logged_rows(log_dir, plan, served_only=False)
    log_info = {"path": log_dir, "files": count_log_files(log_dir), "rows": total,
                "plan_rows": logged.height, "other_plan_rows": total - logged.height}
    if logged.height == 0:
        raise DataError(f"the prediction log holds no rows scored with plan {plan.short_hash} "
                        f"({total} rows of other plans)", key="monitoring.alias",
                        fix="serve traffic with this model first, or pick the alias that served it")
    cmp = consistency_check(logged, ctx.scan_events(), plan, event_id=ctx.event_id,
                            max_mismatch_rate=limit, max_examples=mc.consistency.max_examples)
    failing, worst = cmp["failing"], cmp["worst"]
    alert = None
    if failing:
        reasons = [f"online/offline inconsistency: {f} mismatches on {r:.2%} of events "
                   f"(limit {limit:.2%})" for f, r in sorted(failing.items())]
        alert = {"record": append_alert(ctx.home, model=name, version=mv.version, reasons=reasons,
                                        run=str(ctx.output_dir), source="consistency"),
                 "reasons": reasons}
    result = {"status": cmp["status"], "headline": cmp["headline"],
              "model": {"name": name, "version": mv.version, "alias": mc.alias},
              "plan": {"name": plan.name, "hash": plan.spec_hash}, "log": log_info,
              "join": {**cmp["join"], "matched": cmp["matched"], "unmatched": cmp["unmatched"],
                       "unmatched_examples": cmp["unmatched_examples"]},
              "tolerance": cmp["tolerance"], "max_mismatch_rate": limit,
              "failing": failing, "features": cmp["features"], "alert": alert,
              "duration_s": round(time.perf_counter() - t0, 3)}
    write_report(ctx, "consistency", result, title=f"Online/offline consistency: {name} v{mv.version}",
                 context=consistency_display(result))
    return ActionResult(result=result, exit_code=3 if failing else 0,
                        metrics={"max_mismatch_rate": worst[1]["mismatch_rate"] if worst else 0.0,
                                 "features_failing": float(len(failing))})
