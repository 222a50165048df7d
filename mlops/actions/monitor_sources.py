"""Where the monitor's current rows come from: a data window, files, or the prediction log."""
from __future__ import annotations

import glob
from datetime import datetime, timedelta

import polars as pl

from mlops.actions.context import RunContext
from mlops.data.files import scan_files
from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.monitoring.reference import Reference, fit_reference
from mlops.monitoring.reference_choice import ReferenceChoice
from mlops.monitoring.reference_rows import baseline_from
from mlops.monitoring.run import window_bounds
from mlops.training.table import feature_table
from mlops.training.task import score_frame

PREDICTION = "prediction"


def _score(model, plan: FeaturePlan, df: pl.DataFrame) -> pl.DataFrame:
    """Add the model's score, unless the rows carry one already (logged or given)."""
    if PREDICTION in df.columns:
        return df
    if df.height == 0:
        return df.with_columns(pl.lit(None, pl.Float64).alias(PREDICTION))
    return df.with_columns(pl.Series(PREDICTION, score_frame(model, plan, df)))


def _label_flags(df: pl.DataFrame, plan: FeaturePlan, known_by) -> pl.DataFrame:
    label, avail = plan.label["column"], plan.label.get("available_at")
    if label not in df.columns:
        return df.with_columns(pl.lit(False).alias("__labelled"))
    known = pl.col(label).is_not_null() & pl.col(PREDICTION).is_not_null()
    if avail and avail in df.columns and known_by is not None:
        known = known & (pl.col(avail) <= known_by)
    return df.with_columns(known.alias("__labelled"))


def window_table(ctx: RunContext, plan: FeaturePlan) -> pl.DataFrame:
    """The configured data's point-in-time feature table (with labels), for windows and periods."""
    return feature_table(plan, ctx.scan_events(), labels=ctx.scan_labels(), event_id=ctx.event_id,
                         dedupe=ctx.cfg.data.dedupe)


def period_frame(table: pl.DataFrame, plan: FeaturePlan, model, lo: datetime, hi: datetime,
                 known_by: datetime) -> pl.DataFrame:
    """The rows of ``[lo, hi)`` scored by ``model``, labelled where known by ``known_by``
    (a period reference: its inputs, scores and baseline rows)."""
    rows = table.filter((pl.col(plan.timestamp) >= lo) & (pl.col(plan.timestamp) < hi))
    return _label_flags(_score(model, plan, rows), plan, known_by)


def current_frame(ctx: RunContext, plan: FeaturePlan, model, version=None, *,
                  fitted_until: datetime | None = None,
                  table: pl.DataFrame | None = None) -> tuple[pl.DataFrame, dict]:
    """Current rows with every plan feature, ``prediction``, ``__labelled`` and ``__in_window``.

    Rows before the window (``__in_window`` false) are the detectors' burn-in: a
    streaming detector needs the error level before a change to see the change. Rows the
    model was fitted on (before ``fitted_until``, the end of its train window) are never
    burn-in: their errors are lower than any out-of-sample error, so the step up to the
    window would look like a change.
    """
    mc = ctx.cfg.monitoring
    source = str(mc.source)
    if mc.current and source == "window":  # monitoring.current=<path> alone means "these files"
        source = "files"
    if source == "window":
        table = window_table(ctx, plan) if table is None else table
        ts = plan.timestamp
        lo, hi = window_bounds(table[ts].min(), table[ts].max(), mc.window.start_day,
                               float(mc.window.days))
        burn = lo - timedelta(days=float(mc.window.detector_burn_in_days))
        if fitted_until is not None:
            burn = min(max(burn, fitted_until), lo)
        cur = (table.filter((pl.col(ts) >= burn) & (pl.col(ts) < hi))
               .with_columns((pl.col(ts) >= lo).alias("__in_window")))
        known_by = hi + timedelta(days=float(mc.window.label_wait_days))
        cur = _label_flags(_score(model, plan, cur), plan, known_by)
        info = {"source": "window", "start": lo.isoformat(), "end": hi.isoformat(),
                "labels_known_by": known_by.isoformat(), "rows": cur.height}
    elif source == "files":
        if not mc.current:
            raise ConfigError("source=files needs a path", key="monitoring.current",
                              fix="pass monitoring.current=<parquet/csv glob>")
        lf = scan_files(str(mc.current), key="monitoring.current",
                        timestamp_cols=(plan.timestamp, plan.label.get("available_at") or ""))
        cols = lf.collect_schema().names()
        if not set(plan.feature_names) <= set(cols):  # raw events: compute the features first
            keep = [c for c in (plan.label["column"], plan.label.get("available_at"), PREDICTION)
                    if c and c in cols]
            lf = compute_features(plan, lf, keep=keep)
        cur = _label_flags(_score(model, plan, lf.collect()), plan, None)
        info = {"source": "files", "path": str(mc.current),
                "files": len(glob.glob(str(mc.current))), "rows": cur.height}
    elif source == "prediction_log":
        from mlops.actions.prediction_log_source import prediction_log_frame
        cur, info = prediction_log_frame(ctx, plan, version)  # only what this version served
        cur = _label_flags(cur, plan, None)
    else:
        raise ConfigError(f"must be window, files or prediction_log; got {source!r}",
                          key="monitoring.source")
    if "__in_window" not in cur.columns:
        cur = cur.with_columns(pl.lit(True).alias("__in_window"))
    if cur.filter(pl.col("__in_window")).height == 0:
        raise DataError("the current window has no rows", key="monitoring.window",
                        fix="check monitoring.window / monitoring.current points at data")
    return cur, info


def chosen_reference(ctx: RunContext, choice: ReferenceChoice, plan: FeaturePlan, model, *,
                     stored: str, stream: pl.DataFrame, table: pl.DataFrame | None,
                     n_bins: int, window_start: str | None = None) -> tuple[Reference, dict]:
    """The reference ``monitoring.reference`` chose, and what the report says about it: the
    version's stored one, a saved file, or a period of the data fitted now (its labelled
    rows are the performance baseline)."""
    if choice.kind in ("training", "file"):
        path = stored if choice.kind == "training" else str(choice.path)
        return Reference.load(path), {"kind": choice.kind, "path": path, "describe": choice.describe()}
    mc, ts = ctx.cfg.monitoring, plan.timestamp
    window = stream.filter(pl.col("__in_window"))
    start = datetime.fromisoformat(window_start) if window_start else window[ts].min()
    lo, hi = choice.bounds(start, float(mc.window.days))
    known_by = window[ts].max() + timedelta(days=float(mc.window.label_wait_days))
    rows = period_frame(window_table(ctx, plan) if table is None else table, plan, model, lo, hi, known_by)
    if rows.height == 0:
        raise DataError(f"the reference period [{lo}, {hi}) has no rows", key="monitoring.reference",
                        fix="choose a period the data covers, or monitoring.reference=training")
    ref = fit_reference(rows.select(ts, *plan.feature_names, PREDICTION),
                        numeric=[*plan.numeric, PREDICTION], categorical=plan.categorical, n_bins=n_bins,
                        max_rows=int(ctx.cfg.training.reference.max_rows), timestamp=ts)
    labelled = rows.filter(pl.col("__labelled"))
    if labelled.height:
        ref.baseline = baseline_from(labelled, timestamp=ts, label=plan.label["column"],
                                     score=labelled[PREDICTION].to_numpy())
    return ref, {"kind": choice.kind, "start": lo.isoformat(), "end": hi.isoformat(), "rows": rows.height,
                 "labelled_rows": labelled.height, "describe": choice.describe()}
