"""The features stage: every record's features by one of the plan's backends.

Realtime mode evaluates the plan over the entity's stored events plus the batch's own
events (records validation refused are points, never events: they count in no
batch-mate's window, so a request of 40 is answered as 40 requests of one). A small
batch takes the ``rows`` backend (plain Python: no frame at all), a larger one, or an
experiment, the ``frames`` backend (polars); both compute the same bits. Hybrid mode
reads the materialized windows and finishes them by the same choice of backend (rows up
to :data:`SMALL_HYBRID_BATCH` records). Every batch carries the engine's status.

Which backends a server uses is :class:`Backends`: the plan's, less the rows backend
when the start-up probe (:func:`probe`: :func:`mlops.features.backends.probe_rows` on
stored history, or :func:`mlops.features.online.hybrid_probe.probe_hybrid_rows` on
history materialized the hybrid way) finds it differs from frames, or when it fails on a batch; either is
logged once and shown by ``/ready``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import polars as pl

from mlops.errors import MlopsError
from mlops.features.backends import probe_rows
from mlops.features.backends.rows import row_features
from mlops.features.online import hybrid_features, hybrid_rows, realtime_features
from mlops.features.online.hybrid_probe import probe_hybrid_rows
from mlops.serving.pipeline.requests import Batch
from mlops.serving.pipeline.tables import FrameTable, RowTable

SMALL_BATCH = 16      # records; larger micro-batches take the frames backend
# hybrid: no windows to compute, so the rows backend (about 7 us a record, against the
# frames backend's 1.5 ms fixed cost on the benchmark's plan) stays cheaper far longer
SMALL_HYBRID_BATCH = 128
log = logging.getLogger(__name__)


@dataclass
class Backends:
    """The backends this server evaluates the plan with, and why (``/ready``).

    ``forced`` makes every batch take one backend (``action=parity`` replays each)."""

    usable: tuple[str, ...]
    checks: dict = field(default_factory=dict)   # backend -> what the probe or a batch found
    forced: str | None = None

    def refuse(self, backend: str, why: dict) -> None:
        """Stop using ``backend`` (frames stay): logged once, shown by ``/ready``."""
        if backend in self.usable and backend != "frames":
            self.usable = tuple(b for b in self.usable if b != backend)
            log.warning("feature backend %r refused, serving with %s: %s", backend,
                        " and ".join(self.usable), why.get("reason"))
        self.checks[backend] = {"ok": False, **why}


def probe(backends: Backends, plan, history: pl.DataFrame | None, *, sample: int = 200,
          mode: str = "realtime") -> None:
    """Compare the rows backend with frames on ``sample`` events of ``history`` (in
    ``mode``: realtime windows over the history, or hybrid ones materialized from it);
    refuse it on any difference (or error). Without history the plan's backends stand,
    unprobed."""
    if "rows" not in backends.usable:
        backends.checks.setdefault("rows", {"ok": False, "reason": "the plan has no rows backend"})
        return
    if history is None or history.height == 0:
        backends.checks["rows"] = {"ok": True, "probed": 0, "reason": "no history to probe"}
        return
    try:
        diffs = (probe_hybrid_rows if mode == "hybrid" else probe_rows)(plan, history, sample=sample)
    except Exception as exc:  # a bug in a backend: frames answer
        backends.refuse("rows", {"reason": f"the start-up probe failed: {type(exc).__name__}: {exc}"})
        return
    probed = min(sample, history.height)
    if diffs:
        first = diffs[0]
        backends.refuse("rows", {"probed": probed, "differences": len(diffs),
                                 "reason": f"{len(diffs)} feature values differ from the frames "
                                           f"backend on {probed} events of stored history "
                                           f"(first: {first['feature']} frames={first['frames']!r} "
                                           f"rows={first['rows']!r})", "example": first})
        return
    backends.checks["rows"] = {"ok": True, "probed": probed}


def recent_history(plan, events: pl.LazyFrame | pl.DataFrame, *, rows: int = 20_000) -> pl.DataFrame:
    """The latest ``rows`` events (source columns, in time order): what the start-up probe
    replays. Recent events of many entities, whose windows hold the other recent ones."""
    ts = plan.timestamp
    return (events.lazy().select(list(plan.source_columns)).sort(ts, maintain_order=True)
            .tail(rows).collect())


def features(state, batch: Batch) -> None:
    """The features stage (see the module docstring)."""
    if state.settings.mode == "hybrid":
        return _hybrid(state, batch)
    backends = state.backends
    wanted = backends.forced or ("rows" if batch.n <= SMALL_BATCH and state.router is None
                                 else "frames")
    if wanted == "rows" and "rows" in backends.usable:
        try:
            rows = _row_features(state, batch)
        except MlopsError:  # a busy store: the request's 503, not the backend's fault
            raise
        except Exception as exc:  # a bug in the rows backend: frames from now on
            backends.refuse("rows", {"reason": f"failed on a batch: {type(exc).__name__}: {exc}"})
        else:
            batch.features, batch.backend = RowTable(rows, state.plan.feature_names, state.feature_dtypes), "rows"
            return
    feats = realtime_features(state.plan, state.store, batch.points, events=batch.valid.tolist(),
                              status=True)
    batch.features, batch.backend = FrameTable(feats, state.plan.feature_names), "frames"


def _row_features(state, batch: Batch) -> list[dict]:
    """The rows backend over the stored history plus the batch's own events."""
    plan, cols = state.plan, batch.cols
    points = [dict(zip(cols, values)) for values in zip(*cols.values())]
    history: list[dict] = []
    if plan.windows:
        history = stored_history(plan, state.store, cols[plan.entity], cols[plan.timestamp])
        history += [p for p, ok in zip(points, batch.valid) if ok]
    return row_features(plan, history, points, status=True)


def stored_history(plan, store, entities: list[str], times: list[int]) -> list[dict]:
    """Stored events of the entities since the longest window before the earliest point,
    as rows for the rows backend (one ``json.loads`` for all payloads)."""
    since = min(times) - plan.max_period_seconds * 1_000_000
    stored = store.read_events(list(dict.fromkeys(entities)), since)
    decoded = json.loads("[" + ",".join(p for _, _, p in stored) + "]") if stored else []
    ent, ts = plan.entity, plan.timestamp
    for (e, t, _), d in zip(stored, decoded):  # fresh dicts: completed in place
        d[ent], d[ts] = e, t
    return decoded


def _hybrid(state, batch: Batch) -> None:
    """Materialized windows: the rows backend for a small batch (no frame), else frames."""
    s = state.settings
    res = _hybrid_rows(state, batch)
    if res is None:
        res = hybrid_features(state.plan, state.store, batch.points, now_us=state.now_us(),
                              ttl_seconds=s.ttl_seconds, stale_policy=s.stale_policy,
                              defaults=s.feature_defaults, status=True)
        batch.features, batch.backend = FrameTable(res.features, state.plan.feature_names), "frames"
    else:
        batch.features = RowTable(res.features, state.plan.feature_names, state.feature_dtypes)
        batch.backend = "rows"
    for w, extra in zip(batch.warnings, res.warnings):
        w.extend(extra)
    if s.stale_policy == "refuse":
        owner = batch.owner()
        for row, stale in enumerate(res.stale):
            if stale:
                batch.refused_req[int(owner[row])] = True
    batch.as_of = [None if t is None else _iso(t) for t in res.as_of_us]


def _hybrid_rows(state, batch: Batch):
    """The hybrid features by the rows backend when it should answer this batch (None:
    frames answer; a failure refuses the rows backend from now on)."""
    backends, s = state.backends, state.settings
    wanted = backends.forced or ("rows" if batch.n <= SMALL_HYBRID_BATCH and state.router is None
                                 else "frames")
    if wanted != "rows" or "rows" not in backends.usable:
        return None
    try:
        return hybrid_rows(state.plan, state.store, batch.cols, now_us=state.now_us(), ttl_seconds=s.ttl_seconds,
                           stale_policy=s.stale_policy, defaults=s.feature_defaults, status=True)
    except MlopsError:  # a busy store: the request's 503, not the backend's fault
        raise
    except Exception as exc:  # a bug in the rows backend: frames from now on
        backends.refuse("rows", {"reason": f"failed on a batch: {type(exc).__name__}: {exc}"})
        return None


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat()
