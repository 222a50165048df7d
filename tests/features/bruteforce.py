"""Brute-force feature re-computation in plain Python: the independent truth."""
from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta


def window_value(agg: str, rows: list[dict], column: str | None, t: datetime, default):
    """Aggregate ``rows`` (already restricted to [t - period, t), in event order)."""
    if agg == "count":
        return float(len(rows))
    if agg == "since_last":
        return (t - max(r["ts"] for r in rows)).total_seconds() if rows else default
    vals = [r[column] for r in rows if r[column] is not None]
    if agg == "sum":
        return float(sum(vals))
    if agg == "distinct":
        return float(len(set(vals)))
    if not vals:
        return default
    if agg == "last":
        return vals[-1]
    if agg == "mean":
        return sum(vals) / len(vals)
    if agg == "min":
        return float(min(vals))
    if agg == "max":
        return float(max(vals))
    if agg == "std":
        return statistics.stdev(vals) if len(vals) > 1 else default
    raise ValueError(agg)


def distinct_events(events: list[dict]) -> list[dict]:
    """The events as the default rule counts them: identical rows (every field equal)
    once, the first in input order."""
    seen, out = set(), []
    for e in events:
        key = tuple(sorted(e.items()))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def features_at(events: list[dict], entity, t: datetime, windows: list[dict]) -> dict:
    """Window features for ``entity`` at ``t`` from ``events`` (dicts with user, ts, ...),
    identical events counted once (the plan's default ``duplicates: identical``)."""
    out = {}
    events = distinct_events(events)
    for w in windows:
        lo = t - timedelta(seconds=w["seconds"])
        rows = [e for e in events if e["user"] == entity and lo <= e["ts"] < t]
        rows.sort(key=lambda e: e["ts"])  # stable: ties keep input order
        out[w["name"]] = window_value(w["agg"], rows, w["column"], t, w["default"])
    return out


def close(a, b, tol=1e-9) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
