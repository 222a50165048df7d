"""``action=materialize``: what the server of ``serving.mode`` reads, as of
``serving.as_of``: window features (hybrid) or the events of the longest window (realtime),
with the plan of the model under ``serving.alias`` (the configured one before any model)."""
from __future__ import annotations

import time
from contextlib import closing

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, facts, write_report
from mlops.features.online import materialize
from mlops.features.online.materialize import materialize_as_of

FACTS = ("mode", "entities", "events", "as_of", "compute_seconds", "write_seconds", "plan_hash",
         "plan_from")


def run(ctx: RunContext) -> ActionResult:
    """Load the online store ``serving.store`` names."""
    s = ctx.cfg.serving
    plan, plan_from = ctx.deployment().plan(str(s.alias), ctx.plan)
    t0 = time.perf_counter()
    with closing(ctx.store()) as store:
        rep = materialize(plan, ctx.scan_events(), store, event_id=ctx.event_id, mode=s.mode,
                          as_of=materialize_as_of(s.as_of))
    what = f"{rep.events:,} events of {rep.entities:,} entities" if rep.mode == "realtime" \
        else f"{rep.entities:,} entities"
    result = {"status": "ok", "headline": f"materialized {what} as of "
              f"{rep.as_of:%Y-%m-%d %H:%M} into {s.store.type} ({rep.mode})", **rep.as_dict(),
              "store": {"type": s.store.type, "path": s.store.path if s.store.type == "sqlite"
                        else s.store.url}, "plan_hash": plan.spec_hash, "plan_from": plan_from,
              "seconds": round(time.perf_counter() - t0, 3)}
    write_report(ctx, "materialize", result, title="Materialize the online store",
                 context={"facts": {**facts(result, FACTS), **result["store"]}})
    return ActionResult(result=result)
