"""Which past a monitored window is compared with (``monitoring.reference``), and that
reference, loaded or fitted now (:func:`chosen_reference`).

* ``training`` (the default): the reference stored with the model version (its train
  window's features and scores, and its out-of-sample baseline rows);
* ``{start: <date>, end: <date>}``: a fixed period of the data, ``[start, end)``;
* ``{previous: N}``: the N windows just before the monitored one (rolling), for data with
  trends and seasons where last month is a fairer comparison than the training period;
* a path ending in ``.npz``: a reference fitted and saved earlier.

For a period of the data the reference is fitted at monitoring time from that period's
rows scored by the monitored model, and its labelled rows are the performance baseline.

>>> parse_reference_choice(None).kind, parse_reference_choice({"previous": 2}).previous
('training', 2)
>>> parse_reference_choice({"start": "2024-01-01", "end": "2024-02-01"}).describe()
'the data from 2024-01-01 00:00:00 to 2024-02-01 00:00:00'
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.monitoring.concept import IN_WINDOW, LABELLED
from mlops.monitoring.reference import Reference, fit_reference
from mlops.monitoring.reference_rows import baseline_from
from mlops.monitoring.settings import WindowSettings
from mlops.monitoring.sources import label_flags, score_rows
from mlops.training.task import PREDICTION

KEY = "monitoring.reference"
_FIX = "use training, {start: 2024-01-01, end: 2024-03-01}, {previous: 3} or a path to a reference .npz"


@dataclass(frozen=True)
class ReferenceChoice:
    """The parsed ``monitoring.reference``."""

    kind: str                          # training | range | previous | file
    path: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    previous: int | None = None

    def bounds(self, window_start: datetime, window_days: float) -> tuple[datetime, datetime]:
        """``[lo, hi)`` of a period reference for a window starting at ``window_start``."""
        if self.kind == "range":
            return self.start, self.end
        return window_start - timedelta(days=window_days * self.previous), window_start

    def describe(self) -> str:
        if self.kind == "training":
            return "the model's training reference (stored with its version)"
        if self.kind == "file":
            return f"the fitted reference {self.path}"
        if self.kind == "range":
            return f"the data from {self.start} to {self.end}"
        return f"the {self.previous} window(s) before the monitored one"


def parse_reference_choice(value: object) -> ReferenceChoice:
    """``monitoring.reference`` as a :class:`ReferenceChoice`; a bad value names the key."""
    if value is None or value == "training":
        return ReferenceChoice("training")
    if isinstance(value, str):
        if value.endswith(".npz"):
            return ReferenceChoice("file", path=value)
        raise ConfigError(f"must be training, a period or a reference .npz; got {value!r}", key=KEY, fix=_FIX)
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be training, a period or a reference .npz; got {value!r}", key=KEY, fix=_FIX)
    keys = set(value)
    if keys == {"previous"}:
        n = value["previous"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"previous must be a whole number of windows >= 1; got {n!r}",
                              key=f"{KEY}.previous", fix="e.g. {previous: 3}")
        return ReferenceChoice("previous", previous=n)
    if keys == {"start", "end"}:
        start, end = _date(value["start"], "start"), _date(value["end"], "end")
        if end <= start:
            raise ConfigError(f"end ({end}) must be after start ({start})", key=f"{KEY}.end", fix=_FIX)
        return ReferenceChoice("range", start=start, end=end)
    raise ConfigError(f"a period is {{start, end}} or {{previous}}; got keys {sorted(keys)}", key=KEY, fix=_FIX)


def _date(value: object, name: str) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{name} must be an ISO date like 2024-01-31; got {value!r}",
                          key=f"{KEY}.{name}", fix=_FIX) from None


def period_frame(table: pl.DataFrame, plan: FeaturePlan, model, lo: datetime, hi: datetime,
                 known_by: datetime) -> pl.DataFrame:
    """The rows of ``[lo, hi)`` scored by ``model``, labelled where known by ``known_by``
    (a period reference: its inputs, scores and baseline rows)."""
    rows = table.filter((pl.col(plan.timestamp) >= lo) & (pl.col(plan.timestamp) < hi))
    return label_flags(score_rows(model, plan, rows), plan, known_by)


def chosen_reference(choice: ReferenceChoice, plan: FeaturePlan, model, *, stored: str,
                     stream: pl.DataFrame, table: Callable[[], pl.DataFrame], n_bins: int,
                     max_rows: int, window: WindowSettings,
                     window_start: str | None = None) -> tuple[Reference, dict]:
    """The reference ``choice`` names, and what the report says about it: the version's
    ``stored`` one, a saved file, or a period of the data (``table``) fitted now (its
    labelled rows are the performance baseline)."""
    if choice.kind in ("training", "file"):
        path = stored if choice.kind == "training" else str(choice.path)
        return Reference.load(path), {"kind": choice.kind, "path": path, "describe": choice.describe()}
    ts = plan.timestamp
    current = stream.filter(pl.col(IN_WINDOW))
    start = datetime.fromisoformat(window_start) if window_start else current[ts].min()
    lo, hi = choice.bounds(start, window.days)
    known_by = current[ts].max() + timedelta(days=window.label_wait_days)
    rows = period_frame(table(), plan, model, lo, hi, known_by)
    if rows.height == 0:
        raise DataError(f"the reference period [{lo}, {hi}) has no rows", key=KEY,
                        fix="choose a period the data covers, or monitoring.reference=training")
    ref = fit_reference(rows.select(ts, *plan.feature_names, PREDICTION),
                        numeric=[*plan.numeric, PREDICTION], categorical=plan.categorical,
                        n_bins=n_bins, max_rows=max_rows, timestamp=ts)
    labelled = rows.filter(pl.col(LABELLED))
    if labelled.height:
        ref.baseline = baseline_from(labelled, timestamp=ts, label=plan.label.column,
                                     score=labelled[PREDICTION].to_numpy())
    return ref, {"kind": choice.kind, "start": lo.isoformat(), "end": hi.isoformat(),
                 "rows": rows.height, "labelled_rows": labelled.height,
                 "describe": choice.describe()}
