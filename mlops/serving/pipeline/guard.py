"""The guard stage: what a record the model must not answer gets, one record at a time.

Two kinds of records are not answered by the model:

- records validation found invalid under ``invalid_record_policy=default`` (an event
  time too far ahead of the server clock): never events, never stored;
- records the engine calls unscorable (its status, :data:`~mlops.features.rules.STATUS`,
  under ``rules.nonfinite: reject``): a non-finite row-level value (no event, not
  stored) or a non-finite window or later feature (still an event: stored, as offline
  counts it). The guard never checks finiteness itself: the plan decided.

``invalid_record_policy=reject`` answers the request owning an unscorable record 422
naming the record and the feature; ``default`` answers that record without the model
(the declared ``breaker.default_value``, else no value: ``abstain``) with a warning.
Either way the record never enters the breaker window and every batch-mate is scored
normally.
"""
from __future__ import annotations

import numpy as np

from mlops.features.rules import REJECTED_INPUT
from mlops.serving.http.validation import error
from mlops.serving.pipeline.requests import Batch


def _why(status: str, shown: str) -> str:
    counted = ("it is no event (it counts in no window and is not stored)" if status == REJECTED_INPUT
               else "it is still an event (it counts in later windows and is stored)")
    return f"{status}: {shown} (rules.nonfinite: reject); {counted}"


def guard(state, batch: Batch) -> None:
    """Mark every record the model must not answer (see the module docstring)."""
    unsafe = ~batch.valid
    policy = state.settings.invalid_record_policy
    statuses = batch.features.status()
    if any(s is not None for s in statuses):
        owner = batch.owner()
        starts = np.concatenate([[0], np.cumsum(batch.sizes)[:-1]]).astype(int)
        for row, status in enumerate(statuses):
            if status is None:
                continue
            bad = batch.features.nonfinite(row)
            shown = ", ".join(f"{f} = {v}" for f, v in bad) or "a non-finite value"
            req = int(owner[row])
            if policy == "reject":
                loc = ["records", row - int(starts[req]), *(bad[0][:1] if bad else [])]
                batch.refuse(req, [error(loc, f"the record is refused: {_why(status, shown)}; "
                                         "check its values and the entity's recent events",
                                         "value_error")])
            else:
                unsafe[row] = True
                batch.warnings[row].append(f"answered without the model: {_why(status, shown)}")
    batch.unsafe = unsafe


def answer_unsafe(state, batch: Batch) -> None:
    """Records the guard marked get the declared ``breaker.default_value``, or no value
    (``abstain``) when none is declared."""
    if batch.unsafe is None or not batch.unsafe.any():
        return
    model, info = state.active
    batch.scores.answered(batch.unsafe, "default", state.settings.breaker.default_value, model,
                          info.decision_threshold)
