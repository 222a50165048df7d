"""Circuit breaker: stop trusting the model when its inputs or scores drift.

Over a rolling window of the last ``window`` records (``None``: the window the reference's
limits were calibrated for, :func:`~mlops.serving.breaker.limits.choose_window`), each monitored feature and the
prediction score are binned with the reference bins the caller gives (numeric inner
edges, bins ``[e_i, e_i+1)`` with open outer bins; or categories plus one ``unseen``
bin) and compared with the reference shares by PSI::

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i),   shares floored at 1e-4

NaN/inf values (e.g. a mean over an empty window) are not binned; they are counted
in ``dropped``. Each column's PSI is judged against its limit, calibrated on the model's
reference (:mod:`mlops.serving.breaker.limits`: the spread of the same PSI over reference
chunks of the window's size, never below an effect-size floor) unless ``feature_psi`` /
``prediction_psi`` fix it. The breaker is armed once the window holds the calibrated
minimum (or ``min_requests``); a feature with fewer finite values than that (or
``min_values``) has no PSI yet (None) and does not vote. Armed, it trips when more than
``max_drift_share`` of the voting features are past their limits or the score is past
its limit. With ``reference="previous"`` the window is compared, column by column, with the
``window`` records before it instead (the records leaving the window enter a lagged window
kept by the same rules, :class:`~mlops.serving.breaker.window.EntityWindow`), against limits
calibrated on consecutive reference chunks; it is armed once both windows hold the minimum,
and a feature votes once both hold its minimum of finite values. A slow change (a season the
training period did not see) moves consecutive windows little; an abrupt one trips it.
It stays tripped (latched) until :meth:`CircuitBreaker.reset`, which also
empties the window.

One client cannot trip it: each request adds at most ``max_records_per_request``
records to the window and each entity keeps only its latest records in it, at most
``max_entity_share`` of the window (:class:`~mlops.serving.breaker.window.EntityWindow`: a busy entity
replaces its own oldest record, never another entity's), so a trip needs drift across
the population, and the window follows the population as it is now. With a ``shared``
state (see :mod:`mlops.serving.breaker.shared`, keyed by model name and version) trips
and resets are published to, and polled from, the online store (at most every
``poll_seconds``): a trip by monitoring or by another server of the same version opens
this breaker too; another version (:meth:`CircuitBreaker.rescope`) starts closed.
``listener(action, details)`` is called on every trip and reset (the action layer writes
them to the registry's audit log).

Cost per record is O(features): bin indices go into a ring buffer and per-bin counts
are updated incrementally; PSI is computed from the counts (O(features x bins)).

Example:
    >>> import polars as pl
    >>> from mlops.monitoring.reference import fit_reference
    >>> fitted = fit_reference(pl.DataFrame({"x": np.arange(100.0), "prediction": np.linspace(0, 1, 100)}),
    ...                        numeric=["x", "prediction"], categorical=[], n_bins=4)
    >>> ref = BreakerReference.from_reference(fitted, ["x"])
    >>> br = CircuitBreaker(ref, BreakerSettings(window=50, min_requests=20, min_values=20))
    >>> br.observe({"x": np.full(30, 500.0)}, np.full(30, 0.99)).state
    'tripped'
"""
from __future__ import annotations

import math
import threading
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mlops.errors import ConfigError
from mlops.serving.breaker.bins import SCORE, SHARE_FLOOR, BreakerReference, FeatureBins, _floats, psi
from mlops.serving.breaker.limits import LEGACY_MIN_RECORDS, LEGACY_NOTE, LEGACY_PSI, window_of
from mlops.serving.breaker.window import EntityWindow
from mlops.serving.settings import BreakerSettings

__all__ = ["SCORE", "SHARE_FLOOR", "BreakerReference", "BreakerStatus", "CircuitBreaker",
           "FeatureBins", "psi"]

_SMALL = 16


def _bin_list(b: FeatureBins, values: list) -> list[int]:
    """``b.bin(values)`` for a short list (same bins: right-closed search, -1 for
    null/NaN/inf, the unseen bin for unknown categories)."""
    if b.edges is not None:
        edges = b.edges
        return [bisect_right(edges, x) if isinstance(x, (int, float)) and math.isfinite(x)
                else -1 for x in values]
    lookup, unseen = b._lookup(), len(b.categories)
    return [-1 if v is None else lookup.get(v, unseen) for v in values]


def _request_capped(m: int, sizes: Sequence[int] | None, cap: int) -> np.ndarray | None:
    """Row indices keeping the first ``cap`` records of each request (None: keep all)."""
    if sizes is None or all(n <= cap for n in sizes):
        return None
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    rows = np.concatenate([np.arange(s, s + min(n, cap)) for s, n in zip(starts, sizes)])
    return rows[rows < m]


def _take(values, rows: np.ndarray):
    if hasattr(values, "gather"):  # a polars Series
        return values.gather(rows)
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows]


@dataclass
class BreakerStatus:
    """A snapshot for ``/ready``, ``/metrics`` and the prediction log."""

    state: str                       # "closed" | "tripped" | "disabled"
    reason: str | None
    window_records: int
    feature_psi: dict[str, float | None]
    prediction_psi: float | None
    drifting: list[str] = field(default_factory=list)
    tripped_at: float | None = None
    on_trip: str = "abstain"
    armed: bool = False              # enough records in the window to decide
    scope: str | None = None         # the shared state's key (model name and version)
    min_records: int | None = None   # armed from this many records
    feature_limits: dict[str, float | None] = field(default_factory=dict)
    prediction_limit: float | None = None
    calibration: str | None = None   # where the limits come from
    reference: str = "training"      # serving.breaker.reference
    compared_with: str | None = None  # what the window was compared with, in words
    window: int | None = None        # the window's size, in records
    window_note: str | None = None   # how that size was chosen

    def as_dict(self) -> dict:
        return {"state": self.state, "reason": self.reason, "on_trip": self.on_trip,
                "armed": self.armed, "window_records": self.window_records,
                "min_records": self.min_records, "feature_psi": self.feature_psi,
                "feature_limits": self.feature_limits, "prediction_psi": self.prediction_psi,
                "prediction_limit": self.prediction_limit, "drifting": self.drifting,
                "tripped_at": self.tripped_at, "scope": self.scope,
                "calibration": self.calibration, "reference": self.reference,
                "compared_with": self.compared_with, "window": self.window,
                "window_note": self.window_note}


class CircuitBreaker:
    """Rolling-window PSI breaker (pure numpy, thread-safe)."""

    def __init__(self, reference: BreakerReference, settings: BreakerSettings | None = None,
                 *, shared=None, listener=None, clock=time.monotonic):
        self.settings = settings or BreakerSettings()
        self.shared = shared          # SharedBreakerState or None
        self.listener = listener      # callable(action, details) on trip / reset
        self._clock = clock
        self._next_poll = 0.0
        self._seen_at: float | None = None   # "at" of the last shared record applied
        self.skipped = 0              # records not observed because of the per-request cap
        self._lock = threading.Lock()
        self._use(reference)

    def _use(self, reference: BreakerReference) -> None:
        """Adopt ``reference`` with an empty window and no trip."""
        s = self.settings
        if reference.limits is not None and reference.limits.reference != s.reference:
            raise ConfigError(f"is {s.reference!r} but the breaker's limits were calibrated for "
                              f"{reference.limits.reference!r}", key="serving.breaker.reference",
                              fix=f"calibrate them with calibrated_reference(..., "
                                  f"reference={s.reference!r})")
        self.reference = reference
        self.size, self._window_note = window_of(s, reference.limits)
        self._bins = [*reference.features, reference.score]
        self._ref_shares = [np.asarray(b.shares) for b in self._bins]
        self.window = EntityWindow(size=self.size, columns=len(self._bins),
                                   width=max(b.n_bins for b in self._bins),
                                   per_entity=s.per_entity(self.size),
                                   lagged=s.reference == "previous")
        # every column's reference shares in one matrix, floored as psi() floors them; a
        # column's bins past its own count hold the floor on both sides (they add 0)
        self._ref_floored = np.full(self.window.counts.shape, SHARE_FLOOR)
        for j, ref in enumerate(self._ref_shares):
            self._ref_floored[j, :ref.size] = np.maximum(ref, SHARE_FLOOR)
        self.dropped = 0
        self.tripped = False
        self.reason: str | None = None
        self.tripped_at: float | None = None
        self._last: tuple = ({}, None, [], {}, None)

    @property
    def feature_names(self) -> list[str]:
        return [b.name for b in self.reference.features]

    def _bin(self, columns: Mapping[str, Sequence], scores: np.ndarray) -> np.ndarray:
        """Bin index per record and monitored column (the score last)."""
        m = scores.size
        idx = np.empty((m, len(self._bins)), dtype=np.int16)
        small = m <= _SMALL and all(isinstance(v, list) for v in columns.values())
        for j, b in enumerate(self.reference.features):
            col = columns[b.name] if b.name in columns else [None] * m
            if small:  # a few records as lists: plain Python is 10x cheaper than numpy
                idx[:, j] = _bin_list(b, col)
                continue
            if b.categories is None:
                col = _floats(col)
            elif hasattr(col, "to_list"):
                col = col.to_list()
            idx[:, j] = b.bin(col)
        score = self.reference.score
        idx[:, -1] = _bin_list(score, scores.tolist()) if m <= _SMALL else score.bin(scores)
        return idx

    def observe(self, columns: Mapping[str, Sequence], scores, *,
                entities: Sequence[str] | None = None,
                request_sizes: Sequence[int] | None = None) -> BreakerStatus:
        """Add a batch of records (feature columns by name, model scores) and re-check.

        Columns the reference does not monitor are ignored; a monitored column that is
        missing counts as dropped values. ``request_sizes`` (records per request, in
        order) applies the per-request cap, ``entities`` (one per record) the
        per-entity cap (:class:`~mlops.serving.breaker.window.EntityWindow`); without
        them every record counts.
        """
        scores = _floats(scores)
        m = scores.size
        if m == 0:
            return self.status()
        rows = _request_capped(m, request_sizes, self.settings.max_records_per_request)
        if rows is not None:
            self.skipped += m - rows.size
            scores = scores[rows]
            columns = {k: _take(v, rows) for k, v in columns.items()}
            entities = None if entities is None else [entities[i] for i in rows]
        idx = self._bin(columns, scores)
        events = []
        with self._lock:
            self._sync(events)
            self.dropped += int((idx < 0).sum())
            self.window.push(idx, entities)
            was = self.tripped
            self._evaluate()
            if self.tripped and not was:
                events.append(("breaker_trip", {"reason": self.reason, "source": "window"}))
                if self.shared is not None:
                    self._seen_at = self.shared.publish("tripped", self.reason, "window")
            status = self._status()
        self._notify(events)
        return status

    def _sync(self, events: list) -> None:
        """Apply a newer shared record (a trip by monitoring / another server, a reset)."""
        if self.shared is None or self._clock() < self._next_poll:
            return
        self._next_poll = self._clock() + self.settings.poll_seconds
        rec = self.shared.read()
        if rec is None or (self._seen_at is not None and rec["at"] <= self._seen_at) \
                or not self.shared.applies(rec):
            return
        self._seen_at = rec["at"]
        if rec["state"] == "tripped" and not self.tripped:
            self.tripped, self.tripped_at = True, rec["at"]
            self.reason = f"{rec.get('source', 'shared')}: {rec.get('reason')}"
            events.append(("breaker_trip", {"reason": self.reason, "source": "shared"}))
        elif rec["state"] == "closed" and self.tripped:
            self._clear()
            events.append(("breaker_reset", {"source": "shared"}))

    def _notify(self, events: list) -> None:
        if self.listener is None:
            return
        for action, details in events:
            try:
                self.listener(action, details)
            except Exception:  # auditing must never fail a prediction
                pass

    def poll(self) -> BreakerStatus:
        """Re-read the shared state now (ignoring ``poll_seconds``) and return the status."""
        events: list = []
        with self._lock:
            self._next_poll = 0.0
            self._sync(events)
            status = self._status()
        self._notify(events)
        return status

    @property
    def min_records(self) -> int:
        """Records the window must hold before the breaker judges (it is then armed): an
        explicit ``min_requests``, else the calibrated minimum of the reference's limits."""
        s, limits = self.settings, self.reference.limits
        if s.min_requests is not None:
            return int(s.min_requests)
        return limits.min_records if limits is not None else min(LEGACY_MIN_RECORDS, self.size)

    def _limit(self, column: str | None, values: int) -> float | None:
        """The PSI limit of a feature (``column``; None: the score) judged on ``values``
        values: an explicit ``feature_psi``/``prediction_psi``, else the calibrated limit
        for that many values (None: none calibrated, the column does not vote)."""
        s, limits = self.settings, self.reference.limits
        fixed = s.prediction_psi if column is None else s.feature_psi
        if fixed is not None:
            return float(fixed)
        if limits is None:
            return LEGACY_PSI
        # below the smallest calibrated size (an explicit min_requests): the smallest's limits
        level = limits.at(values) or limits.levels[0]
        found = level.score if column is None else level.features.get(column)
        return None if found is None else found.threshold

    def _psis(self) -> list[tuple[float | None, int]]:
        """(PSI, finite values) per column, the score last; too few finite values (a sparse
        feature, e.g. a mean over a short window): PSI would be noise, so it is None."""
        needed = min(self.settings.min_values or self.min_records, self.size)
        # psi() of every column at once (one numpy pass instead of one call per column)
        counts, lagged = self.window.counts, self.window.lagged
        totals = counts.sum(axis=1)
        cur = np.maximum(counts / np.maximum(totals, 1)[:, None], SHARE_FLOOR)
        ref = self._ref_floored
        if lagged is not None:  # against the window before: its shares, and the smaller count
            before = lagged.counts.sum(axis=1)
            ref = np.maximum(lagged.counts / np.maximum(before, 1)[:, None], SHARE_FLOOR)
            totals = np.minimum(totals, before)
        found = ((cur - ref) * np.log(cur / ref)).sum(axis=1)
        values = np.where(totals > 0, found, np.nan).tolist()  # no values: no distribution
        return [(v if n >= needed else None, n) for v, n in zip(values, totals.tolist())]

    def _evaluate(self) -> None:
        values = self._psis()
        s = self.settings
        feats, limits = {}, {}
        for b, (v, n) in zip(self.reference.features, values[:-1]):
            feats[b.name], limits[b.name] = v, None if v is None else self._limit(b.name, n)
        drifting = [n for n, v in feats.items() if limits[n] is not None and v > limits[n]]
        pred, pred_n = values[-1]
        pred_limit = None if pred is None else self._limit(None, pred_n)
        self._last = (feats, pred, drifting, limits, pred_limit)
        if self.tripped or not s.enabled or not self._armed():
            return
        voting = [n for n in feats if limits[n] is not None]
        share = len(drifting) / max(len(voting), 1)
        reasons = []
        if voting and share > s.max_drift_share:
            past = ", ".join(f"{n} {feats[n]:.3f} > {limits[n]:.3f}" for n in drifting)
            reasons.append(f"{len(drifting)}/{len(voting)} features drift (PSI past its "
                           f"limit): {past}")
        if pred_limit is not None and pred > pred_limit:
            reasons.append(f"prediction PSI {pred:.3f} > {pred_limit:.3f}")
        if reasons:
            self.tripped, self.reason, self.tripped_at = True, "; ".join(reasons), time.time()

    def _armed(self) -> bool:
        """Enough records to judge: in the window and, against the window before, in both."""
        lagged = self.window.lagged
        judged = self.window.filled if lagged is None else min(self.window.filled, lagged.filled)
        return judged >= self.min_records

    def _compared_with(self) -> str:
        if self.settings.reference == "previous":
            return f"the {self.size:,} records before"
        return "the training reference"

    def _status(self) -> BreakerStatus:
        feats, pred, drifting, limits, pred_limit = self._last
        state = "disabled" if not self.settings.enabled else (
            "tripped" if self.tripped else "closed")
        calibrated = self.reference.limits
        return BreakerStatus(state, self.reason, self.window.filled, dict(feats), pred,
                             list(drifting), self.tripped_at, self.settings.on_trip,
                             armed=self._armed(),
                             scope=None if self.shared is None else self.shared.key,
                             min_records=self.min_records, feature_limits=dict(limits),
                             prediction_limit=pred_limit,
                             calibration=LEGACY_NOTE if calibrated is None else
                             "calibrated on consecutive chunks of the model's reference"
                             if self.settings.reference == "previous" else
                             "calibrated on the model's reference",
                             reference=self.settings.reference,
                             compared_with=self._compared_with(), window=self.size,
                             window_note=self._window_note)

    def status(self) -> BreakerStatus:
        """Current state, reason and PSIs (after polling the shared state when due)."""
        events: list = []
        with self._lock:
            self._sync(events)
            status = self._status()
        self._notify(events)
        return status

    def _clear(self) -> None:
        self.window.clear()
        self.tripped, self.reason, self.tripped_at = False, None, None
        self._last = ({}, None, [], {}, None)

    def rescope(self, shared, reference: BreakerReference | None = None) -> None:
        """Serve another model version: its own shared state (``shared``, keyed by name and
        version) and reference, an empty window and no trip. A trip of the previous
        version is not inherited; a standing trip of the new one is read at the next poll."""
        with self._lock:
            self.shared, self._seen_at, self._next_poll = shared, None, 0.0
            self._use(reference or self.reference)

    def reset(self, actor: str | None = None) -> BreakerStatus:
        """Close the breaker and empty the window (admin action); published to the
        shared state so every server closes."""
        with self._lock:
            was = self.tripped
            self._clear()
            if self.shared is not None:
                self._seen_at = self.shared.publish("closed", "reset by an operator", "admin")
            status = self._status()
        self._notify([("breaker_reset", {"source": "admin", "was_tripped": was,
                                         "actor": actor})])
        return status
