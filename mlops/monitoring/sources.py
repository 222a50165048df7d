"""Where the monitored rows come from: a window of the data, files, or the prediction log.

Each source gives the rows with every plan feature, the model's score (``prediction``),
``__labelled`` (the label is known by then) and ``__in_window`` (rows before the window are
the detectors' burn-in), plus a description for the report. The prediction log is read here,
once, for every reader (the monitor, ``action=consistency``), and joined with the labels
known so far. Frames and typed settings in, frames out: the action picks the source.
"""
from __future__ import annotations

import glob
from collections.abc import Callable
from datetime import datetime, timedelta

import polars as pl

from mlops.data.files import scan_files
from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.monitoring.concept import IN_WINDOW, LABELLED
from mlops.monitoring.run import window_bounds
from mlops.monitoring.settings import MonitoringSettings, WindowSettings
from mlops.serving.prediction_log import count_log_files, model_score, scan_prediction_log
from mlops.training.task import PREDICTION, score_frame

LOG_TIME = "event_ts"  # the prediction log's event-time column, whatever the plan calls it
REQUEST_ID = "request_id"


def score_rows(model, plan: FeaturePlan, df: pl.DataFrame) -> pl.DataFrame:
    """Add the model's score, unless the rows carry one already (logged or given)."""
    if PREDICTION in df.columns:
        return df
    if df.height == 0:
        return df.with_columns(pl.lit(None, pl.Float64).alias(PREDICTION))
    return df.with_columns(pl.Series(PREDICTION, score_frame(model, plan, df)))


def label_flags(df: pl.DataFrame, plan: FeaturePlan, known_by: datetime | None) -> pl.DataFrame:
    """``__labelled``: a scored row whose label is present (and, with ``available_at``,
    known by ``known_by``)."""
    label, avail = plan.label.column, plan.label.available_at
    if label not in df.columns:
        return df.with_columns(pl.lit(False).alias(LABELLED))
    known = pl.col(label).is_not_null() & pl.col(PREDICTION).is_not_null()
    if avail and avail in df.columns and known_by is not None:
        known = known & (pl.col(avail) <= known_by)
    return df.with_columns(known.alias(LABELLED))


def logged_rows(log_dir: str, plan: FeaturePlan, *, version: int | None = None,
                served_only: bool = True, fix: str = "serve traffic first (action=serve or "
                                                     "action=replay)") -> tuple[pl.DataFrame, int]:
    """(rows of the prediction log scored with ``plan``, rows in the whole log).

    Each row: ``request_id``, the entity and event time under the plan's names, the model's
    score (``prediction``; null for a declared default or an abstention: no model output),
    ``model_version``, ``served_by`` and every logged feature. ``served_only`` leaves out
    shadow rows (scored, never served); ``version`` keeps one version's rows.
    """
    log = scan_prediction_log(log_dir)  # parquet parts + journal not yet compacted
    if log is None:
        raise DataError(f"no prediction log under {log_dir}", key="serving.log_dir", fix=fix)
    total = log.select(pl.len()).collect().item()
    log = log.filter(pl.col("plan_hash") == plan.spec_hash)
    if served_only:  # in an experiment other arms' rows are other models' (version filter)
        log = log.filter(pl.col("served_by").fill_null("model") != "shadow")
    if version is not None:
        log = log.filter(pl.col("model_version") == str(version))
    # the log names its columns itself (entity, event_ts); the plan's names are the project's
    rows = (log.select(REQUEST_ID, pl.col("entity").alias(plan.entity),
                       pl.col(LOG_TIME).alias(plan.timestamp), model_score().alias(PREDICTION),
                       "model_version", "served_by", "features")
            .unnest("features").collect())
    return rows, total


def join_labels(df: pl.DataFrame, events: pl.LazyFrame, plan: FeaturePlan, *,
                event_id: str | None, label_wait_days: float) -> tuple[pl.DataFrame, str | None]:
    """Logged rows with the labels known so far, and when they count as known.

    Joined on the request id (= the event id the client sent) or, without an event id, on
    (entity, timestamp); a label counts once its ``available_at`` is at or before the last
    logged event + ``label_wait_days``. Returns (rows, that time as ISO text or None when the
    events hold no label).
    """
    label, avail = plan.label.column, plan.label.available_at
    cols = events.collect_schema()
    if label not in cols:
        return df, None
    extra = [label, *([avail] if avail and avail in cols else [])]
    if event_id and event_id in cols:
        labels = events.select(pl.col(event_id).cast(pl.String).alias(REQUEST_ID), *extra)
        df = df.join(labels.collect(), on=REQUEST_ID, how="left")
    else:  # no event id: the event is its (entity, timestamp)
        key = [plan.entity, plan.timestamp]
        labels = (events.select(pl.col(plan.entity).cast(pl.String),
                                pl.col(plan.timestamp).cast(pl.Datetime("us")), *extra)
                  .unique(subset=key, keep="first").collect())
        df = df.with_columns(pl.col(plan.timestamp).cast(pl.Datetime("us"))).join(
            labels, on=key, how="left")
    known_by = df[plan.timestamp].max() + timedelta(days=label_wait_days)
    if avail and avail in df.columns:
        df = df.with_columns(pl.when(pl.col(avail) <= known_by).then(pl.col(label))
                             .otherwise(None).alias(label))
    return df, known_by.isoformat()


def prediction_log_frame(log_dir: str, plan: FeaturePlan, events: pl.LazyFrame, *,
                         version: int | None, event_id: str | None,
                         label_wait_days: float) -> tuple[pl.DataFrame, dict]:
    """What version ``version`` served, with the labels known so far (``prediction`` is the
    served score), and its description."""
    df, _ = logged_rows(log_dir, plan, version=version,
                        fix="serve traffic first (action=serve or action=replay), or use "
                            "monitoring.source=window")
    df = df.drop("served_by")
    info = {"source": "prediction_log", "path": log_dir, "files": count_log_files(log_dir),
            "rows": df.height}
    df, known_by = join_labels(df, events, plan, event_id=event_id,
                               label_wait_days=label_wait_days)
    if known_by is not None:
        info["labels_known_by"] = known_by
    info["start"] = str(df[plan.timestamp].min())
    info["end"] = str(df[plan.timestamp].max())
    return label_flags(df, plan, None), info


def window_frame(table: pl.DataFrame, plan: FeaturePlan, model, window: WindowSettings, *,
                 fitted_until: datetime | None) -> tuple[pl.DataFrame, dict]:
    """The monitored window of ``table`` with its burn-in rows before it, scored.

    Rows before the window (``__in_window`` false) are the detectors' burn-in: a
    streaming detector needs the error level before a change to see the change. Rows the
    model was fitted on (before ``fitted_until``, the end of its train window) are never
    burn-in: their errors are lower than any out-of-sample error, so the step up to the
    window would look like a change.
    """
    ts = plan.timestamp
    lo, hi = window_bounds(table[ts].min(), table[ts].max(), window.start_day, window.days)
    burn = lo - timedelta(days=window.detector_burn_in_days)
    if fitted_until is not None:
        burn = min(max(burn, fitted_until), lo)
    cur = (table.filter((pl.col(ts) >= burn) & (pl.col(ts) < hi))
           .with_columns((pl.col(ts) >= lo).alias(IN_WINDOW)))
    known_by = hi + timedelta(days=window.label_wait_days)
    cur = label_flags(score_rows(model, plan, cur), plan, known_by)
    return cur, {"source": "window", "start": lo.isoformat(), "end": hi.isoformat(),
                 "labels_known_by": known_by.isoformat(), "rows": cur.height}


def files_frame(path: str, plan: FeaturePlan, model) -> tuple[pl.DataFrame, dict]:
    """The rows of the files at ``path`` (features, or raw events whose features are
    computed first), scored unless they carry ``prediction``."""
    avail = plan.label.available_at
    lf = scan_files(path, key="monitoring.current", timestamp_cols=(plan.timestamp, avail or ""))
    cols = lf.collect_schema().names()
    if not set(plan.feature_names) <= set(cols):  # raw events: compute the features first
        keep = [c for c in (plan.label.column, avail, PREDICTION) if c and c in cols]
        lf = compute_features(plan, lf, keep=keep)
    cur = label_flags(score_rows(model, plan, lf.collect()), plan, None)
    return cur, {"source": "files", "path": path, "files": len(glob.glob(path)), "rows": cur.height}


def current_frame(settings: MonitoringSettings, plan: FeaturePlan, model, *,
                  table: Callable[[], pl.DataFrame], log: Callable[[], tuple[pl.DataFrame, dict]],
                  fitted_until: datetime | None) -> tuple[pl.DataFrame, dict]:
    """The current rows ``monitoring.source`` names (``table``: the data's feature table;
    ``log``: the prediction log's rows, read only when chosen), with ``__in_window``."""
    source = settings.source
    if settings.current and source == "window":  # monitoring.current=<path> alone: "these files"
        source = "files"
    if source == "window":
        cur, info = window_frame(table(), plan, model, settings.window, fitted_until=fitted_until)
    elif source == "files":
        if not settings.current:
            raise ConfigError("source=files needs a path", key="monitoring.current",
                              fix="pass monitoring.current=<parquet/csv glob>")
        cur, info = files_frame(settings.current, plan, model)
    else:  # prediction_log: only what this version served
        cur, info = log()
    if IN_WINDOW not in cur.columns:
        cur = cur.with_columns(pl.lit(True).alias(IN_WINDOW))
    if cur.filter(pl.col(IN_WINDOW)).height == 0:
        raise DataError("the current window has no rows", key="monitoring.window",
                        fix="check monitoring.window / monitoring.current points at data")
    return cur, info
