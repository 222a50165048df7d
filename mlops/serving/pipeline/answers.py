"""What each request of a micro-batch is answered: its records' answers, a 422 naming
the record, or a 503 (a tripped breaker that refuses, stale features under ``refuse``)."""
from __future__ import annotations

import math

from mlops.serving.pipeline.requests import Batch, Outcome


def refused_message(breaker) -> str:
    """The 503 detail while the breaker refuses predictions."""
    return (f"circuit breaker tripped: {breaker.reason}; predictions are refused until an "
            "operator resets it (POST /admin/breaker/reset or action=breaker_reset)")


def refusal(breaker) -> Outcome:
    """The 503 of a tripped breaker with ``on_trip=refuse``; Retry-After is when this
    server next reads the shared state (a reset elsewhere is seen by then)."""
    retry = max(1, math.ceil(breaker.settings.poll_seconds))
    return Outcome(503, detail=refused_message(breaker), headers={"Retry-After": str(retry)})


def stale_refusal() -> Outcome:
    """The 503 of a request whose online features are stale under ``refuse``."""
    return Outcome(503, detail="stale online features for this request (older than the "
                               "freshness TTL) and serving.stale_policy=refuse; run "
                               "action=materialize")


def respond(state, batch: Batch) -> list[Outcome]:
    """One :class:`Outcome` per request, in order."""
    scores = batch.scores
    label_list, prob_list, decisions = scores.lists()
    info, routed = scores.info, scores.routed
    out, start = [], 0
    for i, n in enumerate(batch.sizes):
        end = start + n
        if i in batch.rejected:
            out.append(Outcome(422, detail=batch.rejected[i]))
        elif batch.refused_req[i]:
            out.append(stale_refusal())
        else:
            body = {"predictions": label_list[start:end],
                    **({} if prob_list is None else {"probabilities": prob_list[start:end]}),
                    "decisions": decisions[start:end],
                    "model": {"name": info.name, "version": str(info.version)},
                    "plan_hash": state.plan.spec_hash, "warnings": batch.warnings[start:end],
                    "request_ids": batch.ids[start:end], "served_by": scores.served_by}
            if batch.as_of is not None:
                body["features_as_of"] = batch.as_of[start:end]
            if routed is not None and scores.served_by == "model":
                body["variants"] = routed.variants[start:end]
                body["models"] = [{"name": x.name, "version": str(x.version)}
                                  for x in routed.infos[start:end]]
                body["model"] = body["models"][0]
            out.append(Outcome(200, body=body, durable=batch.durable))
        start = end
    return out
