"""``action=replay``: send a window of historical events (``serving.replay``) through the
HTTP app of the model under ``serving.alias``, in process (:mod:`mlops.serving.replay`), and
report what it answered and whether the circuit breaker tripped."""
from __future__ import annotations

import time

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.errors import ConfigError
from mlops.reports.views.replay import replay_display
from mlops.serving.replay import replay_window


def run(ctx: RunContext) -> ActionResult:
    """Replay ``serving.replay.days`` of events through the app; report the breaker."""
    t0, rc = time.perf_counter(), ctx.cfg.serving.replay
    # the breaker state of a dry run is its own: it neither inherits a trip (of
    # production or of an earlier replay) nor leaves one behind
    state = ctx.serving_state(breaker_scope=f"replay-{ctx.output_dir.name}")
    cap = ctx.cfg.serving.breaker.max_records_per_request
    if rc.records_per_request is not None and rc.records_per_request < 1:
        raise ConfigError(f"must be >= 1; got {rc.records_per_request}", key="serving.replay.records_per_request",
                          fix="give a positive number, or null for the breaker's per-request cap")
    step = rc.records_per_request or cap
    result = replay_window(state, ctx.scan_events().collect(), days=rc.days,
                           start_day=rc.start_day, records_per_request=step, event_id=ctx.event_id)
    if state.breaker is not None and step > cap:
        # one request adds at most `cap` records to the breaker's window (one client cannot trip it)
        result["breaker_note"] = (f"the breaker observed at most {cap} of each request's {step} records "
                                  "(serving.breaker.max_records_per_request); leave "
                                  "serving.replay.records_per_request null to let it see every record")
    result["duration_s"] = round(time.perf_counter() - t0, 3)
    write_report(ctx, "replay", result, title=f"Live traffic: {state.info.name} v{state.info.version}",
                 context=replay_display(result, state.plan.label.column))
    return ActionResult(result=result, metrics={"breaker_tripped": float(result["breaker_tripped"])})
