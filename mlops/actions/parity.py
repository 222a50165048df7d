"""``action=parity``: replay events through the request pipeline of every backend of the
plan (the served model when one is registered) and compare with batch scoring; exit 1 on
any difference."""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.serving import replay_parity


def run(ctx: RunContext) -> ActionResult:
    """Replay ``serving.parity_events`` events per backend, bit for bit."""
    s = ctx.cfg.serving
    model, info, plan, plan_from = ctx.deployment().model_or_plan(str(s.alias), ctx.plan)
    events = ctx.scan_events().collect()
    rep = replay_parity(plan, events, model=model, info=info, n_events=int(s.parity_events),
                        seed=int(ctx.cfg.seed), batch_size=4, source_schema=dict(events.schema))
    result = {"status": "ok" if rep.ok else "fail", "headline": rep.headline(), **rep.as_dict(),
              "plan": {"name": plan.name, "hash": plan.spec_hash, "from": plan_from}}
    write_report(ctx, "parity", result, title="Parity: the request pipeline vs batch scoring")
    return ActionResult(result=result, exit_code=0 if rep.ok else 1)
