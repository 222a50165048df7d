"""Rules that decide, once per plan, what is an event and what a non-finite value becomes.

Declared in the feature spec (``rules:`` and ``event_id:``), hashed with it, and applied
identically by every evaluation of the plan: the polars backend (training, batch
scoring, frames at serving) and the row backend (small realtime batches). Serving and
training decide how to *answer* an unscorable record; what it *is* is decided here.

``rules.nonfinite`` (default ``missing``): a NaN or +-inf value in a record.

- ``missing``: the value becomes null (a missing value), wherever it appears: a raw numeric column,
  a derived feature, a window input, a window aggregate (a sum that overflows). The
  record stays an event: it counts in windows (``count`` counts it; value aggregates
  skip the null, as they skip any missing value) and is stored online; the model sees
  a missing value, as for any null feature. Nothing non-finite ever reaches a model or
  a window, so no path can crash on one.
- ``reject``: a record with a non-finite *row-level* value (raw numeric column, derived
  feature computed before windows, window input) is not an event: it counts in no window
  and is never stored. A record whose *window or after-window* features come out
  non-finite (e.g. a sum overflow) is unscorable but still an event: whether a record
  counts can only depend on the record itself, or every later window would depend on
  a sequential decision. Unscorable records carry the reason in the engine's ``status``
  column (:data:`STATUS`); training drops them, batch scoring writes them without a
  score, serving answers them per ``serving.invalid_record_policy``.

Records with a null entity or a null timestamp are never events (both rules).

``event_id`` (default none) and ``rules.duplicates`` (default ``identical``): when two
rows are the same event. With an ``event_id`` column, rows sharing an id are one event
(the first in input order counts; a null id is never a duplicate). Without one,
``identical`` rows (same entity, timestamp and source values, a non-finite value equal
to null) count once, as the online store has always stored them; ``all`` counts every
row. A duplicate is still an evaluation point (it gets features and a score), but never
an event in any window.
"""
from __future__ import annotations

from dataclasses import dataclass

STATUS = "__status"          # engine column: null when scorable, else why not
REJECTED_INPUT = "non-finite input"
REJECTED_FEATURE = "non-finite feature"


@dataclass(frozen=True)
class EventRules:
    """The plan's resolved rules (see the module docstring)."""

    nonfinite: str = "missing"
    duplicates: str = "identical"
    event_id: str | None = None

    @classmethod
    def from_resolved(cls, resolved: dict) -> "EventRules":
        rules = resolved.get("rules") or {}
        return cls(nonfinite=rules.get("nonfinite", "missing"),
                   duplicates=rules.get("duplicates", "identical"),
                   event_id=resolved.get("event_id"))

    @property
    def reject(self) -> bool:
        return self.nonfinite == "reject"

    def describe(self) -> dict:
        return {"nonfinite": self.nonfinite, "duplicates": self.duplicates,
                "event_id": self.event_id}
