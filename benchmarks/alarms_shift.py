"""Shifts injected at a known time, and how alarms over windows are scored.

Scenarios (each a separate run over the same windows):

- ``none``: the data as they are; every window is a false-alarm opportunity.
- ``inputs``: from ``at`` on, chosen input columns move by ``k`` standard deviations of
  the reference (the training period); labels untouched (data drift).
- ``labels``: from ``at`` on, the label changes for the same inputs (concept drift):
  a regression label is scaled; a 0/1 label flips with a given probability for rows
  whose ``segment`` column is above its reference median. Inputs untouched.

Scoring: a judgment that watches inputs (data drift, the breaker) may fire in no window
of ``none``, before the shift of ``inputs``, and anywhere in ``labels`` (its inputs never
change); its delay comes from ``inputs``. A judgment that watches performance (concept
drift) may fire in no window of ``none`` and before the shift of ``inputs`` and ``labels``;
its delay comes from ``labels``; after the shift of ``inputs`` it is not scored (a moved
input can change performance legitimately). The delay runs to the first alarm in a shifted
window that the unshifted run (``none``) did not also raise in the same window: an alarm
that fires with or without the shift is no evidence of detecting it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

SCENARIOS = ("none", "inputs", "labels")
WATCHES = {"data_drift": "inputs", "breaker": "inputs",
           "concept_drift": "labels", "detectors": "labels"}
MAX_FALSE_ALARM_RATE = 0.05   # the targets
MAX_DELAY = 1                 # "within 2 windows": the first or second shifted window


def shift_inputs(df: pl.DataFrame, *, at: datetime, timestamp: str,
                 shifts: dict[str, float], reference_sd: dict[str, float]) -> pl.DataFrame:
    """Rows at or after ``at``: ``column + k * reference_sd[column]`` for each shifted column.

    >>> df = pl.DataFrame({"t": [datetime(2020, 1, 1), datetime(2021, 1, 1)], "x": [1.0, 1.0]})
    >>> shift_inputs(df, at=datetime(2021, 1, 1), timestamp="t", shifts={"x": 0.5},
    ...              reference_sd={"x": 2.0})["x"].to_list()
    [1.0, 2.0]
    """
    after = pl.col(timestamp) >= at
    return df.with_columns([
        pl.when(after).then(pl.col(c) + k * reference_sd[c]).otherwise(pl.col(c)).alias(c)
        for c, k in shifts.items()])


def shift_labels(df: pl.DataFrame, *, at: datetime, timestamp: str, label: str, spec: dict,
                 reference: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Rows at or after ``at`` get another label for the same inputs.

    ``{"scale": s}``: the label times ``s`` (regression). ``{"flip": p, "segment": col}``:
    a 0/1 label flips with probability ``p`` where ``col`` exceeds its median in
    ``reference`` (draws from ``numpy.random.default_rng(seed)``, one per row, in row order).
    """
    after = pl.col(timestamp) >= at
    if "scale" in spec:
        return df.with_columns(pl.when(after).then(pl.col(label) * float(spec["scale"]))
                               .otherwise(pl.col(label)).alias(label))
    median = float(reference[spec["segment"]].median())
    draw = np.random.default_rng(seed).random(df.height) < float(spec["flip"])
    flip = after & (pl.col(spec["segment"]) > median) & pl.lit(pl.Series(draw))
    dtype = df.schema[label]
    return df.with_columns(pl.when(flip).then(1 - pl.col(label)).otherwise(pl.col(label))
                           .cast(dtype).alias(label))


def scenario_frame(df: pl.DataFrame, scenario: str, *, at: datetime, timestamp: str, label: str,
                   inputs: dict, labels: dict, reference: pl.DataFrame) -> pl.DataFrame:
    """The events of one scenario (``none`` returns ``df`` itself)."""
    if scenario == "none":
        return df
    if scenario == "inputs":
        sd = {c: float(reference[c].std()) for c in inputs}
        return shift_inputs(df, at=at, timestamp=timestamp, shifts=inputs, reference_sd=sd)
    if scenario == "labels":
        return shift_labels(df, at=at, timestamp=timestamp, label=label, spec=labels,
                            reference=reference)
    raise ValueError(f"scenario must be one of {SCENARIOS}; got {scenario!r}")


def unshifted(judgment: str, scenario: str, n_windows: int, shift_index: int) -> list[int]:
    """Indices of the windows where ``judgment`` has nothing to find (module docstring)."""
    watches = WATCHES[judgment]
    if scenario == "none" or (scenario == "labels" and watches == "inputs"):
        return list(range(n_windows))
    return list(range(min(shift_index, n_windows)))


@dataclass
class Score:
    """A judgment's false alarms over its unshifted windows and its delay after the shift."""

    false_alarms: int
    opportunities: int
    delay: int | None          # windows after the shift's first window to the first alarm the
    #                            unshifted run did not also raise; None: never
    undecided: int = 0         # unshifted windows where it gave no verdict (e.g. too few rows)
    hits: int = 0              # shifted windows (of the scenario it watches) with an alarm
    shifted: int = 0           # ... out of this many
    unshifted_hits: int = 0    # alarms in those same windows of the unshifted run (``none``)

    @property
    def false_alarm_rate(self) -> float | None:
        return self.false_alarms / self.opportunities if self.opportunities else None

    def as_dict(self) -> dict:
        return {"false_alarms": self.false_alarms, "opportunities": self.opportunities,
                "false_alarm_rate": self.false_alarm_rate, "delay": self.delay,
                "undecided": self.undecided, "hits": self.hits, "shifted": self.shifted,
                "unshifted_hits": self.unshifted_hits}


def first_alarm(alarms: list[bool | None], start: int) -> int | None:
    """Windows from ``start`` to the first alarm (0: the window at ``start``), or None."""
    for i in range(start, len(alarms)):
        if alarms[i]:
            return i - start
    return None


def score(judgment: str, alarms: dict[str, list[bool | None]], shift_index: int) -> Score:
    """Score one judgment's per-window alarms (``None`` = no verdict) over the scenarios."""
    fa = opp = undecided = 0
    for scenario, calls in alarms.items():
        for i in unshifted(judgment, scenario, len(calls), shift_index):
            if calls[i] is None:
                undecided += 1
                continue
            opp += 1
            fa += bool(calls[i])
    after = alarms.get(WATCHES[judgment], [])[shift_index:]
    # An alarm in a shifted window counts as detecting the shift only when the unshifted run
    # was quiet in that same window: a natural event there (a stormy week) would have fired anyway.
    plain = (alarms.get("none") or [])[shift_index:]
    caused = [bool(a) and not (i < len(plain) and plain[i]) for i, a in enumerate(after)]
    return Score(false_alarms=fa, opportunities=opp, delay=first_alarm(caused, 0), undecided=undecided,
                 hits=sum(bool(a) for a in after), shifted=len(after),
                 unshifted_hits=sum(bool(a) for a in plain[:len(after)]))


def targets(ours: Score, peers: list[Score]) -> dict[str, bool | None]:
    """The issue's three targets for one judgment (None: cannot be judged)."""
    rate = ours.false_alarm_rate
    out = {"false_alarms_at_most_5pct": None if rate is None else rate <= MAX_FALSE_ALARM_RATE,
           "detected_within_2_windows": ours.delay is not None and ours.delay <= MAX_DELAY}
    rated = [p for p in peers if p.false_alarm_rate is not None]
    if rate is None or not rated:
        out["beats_both_peers"] = None
    else:
        out["beats_both_peers"] = all(
            rate < p.false_alarm_rate and ours.delay is not None
            and (p.delay is None or ours.delay <= p.delay) for p in rated)
    return out
