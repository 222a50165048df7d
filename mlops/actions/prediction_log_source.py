"""The monitor's ``prediction_log`` source: what the server logged, joined with late labels."""
from __future__ import annotations

from datetime import timedelta

import polars as pl

from mlops.actions.context import RunContext
from mlops.errors import DataError
from mlops.features.compile import FeaturePlan
from mlops.serving.prediction_log import count_log_files, model_score, scan_prediction_log

LOG_TIME = "event_ts"  # the prediction log's event-time column, whatever the plan calls it


def prediction_log_frame(ctx: RunContext, plan: FeaturePlan, version=None
                         ) -> tuple[pl.DataFrame, dict]:
    """Logged features + served probability (``prediction``), with labels known so far.

    Labels come from the configured data source, joined on the request id (= the
    event id, ``data.event_id``, the client sent) or, without an event id, on
    (entity, timestamp); a label counts once its ``available_at`` is at or before the
    last logged event + ``label_wait_days``.
    """
    log_dir = ctx.cfg.serving.log_dir or str(ctx.home / "predictions")
    log = scan_prediction_log(log_dir)  # parquet parts + journal not yet compacted
    if log is None:
        raise DataError(f"no prediction log under {log_dir}", key="serving.log_dir",
                        fix="serve traffic first (action=serve or action=replay), or use "
                            "monitoring.source=window")
    plan_hash = log.select(pl.col("plan_hash").unique()).collect().to_series().to_list()
    if plan_hash != [plan.spec_hash]:
        log = log.filter(pl.col("plan_hash") == plan.spec_hash)
    # shadow scores were never served; in an experiment other arms' rows are other models
    log = log.filter(pl.col("served_by").fill_null("model") != "shadow")
    if version is not None:
        log = log.filter(pl.col("model_version") == str(version))
    # inputs of every request count for data drift; a declared default value or an
    # abstention of the tripped breaker is not a model output, so it is no prediction
    # the log names its columns itself (entity, event_ts); the plan's names are the project's
    df = (log.select("request_id", pl.col("entity").alias(plan.entity),
                     pl.col(LOG_TIME).alias(plan.timestamp),
                     model_score().alias("prediction"), "model_version", "features")
          .unnest("features").collect())
    label, avail = plan.label["column"], plan.label.get("available_at")
    events = ctx.scan_events()
    cols = events.collect_schema()
    info = {"source": "prediction_log", "path": log_dir, "files": count_log_files(log_dir),
            "rows": df.height}
    if label in cols:
        extra = [label, *([avail] if avail and avail in cols else [])]
        eid = ctx.event_id
        if eid and eid in cols:
            labels = events.select(pl.col(eid).cast(pl.String).alias("request_id"), *extra)
            df = df.join(labels.collect(), on="request_id", how="left")
        else:  # no event id: the event is its (entity, timestamp)
            key = [plan.entity, plan.timestamp]
            labels = (events.select(pl.col(plan.entity).cast(pl.String),
                                    pl.col(plan.timestamp).cast(pl.Datetime("us")), *extra)
                      .unique(subset=key, keep="first").collect())
            df = df.with_columns(pl.col(plan.timestamp).cast(pl.Datetime("us"))).join(
                labels, on=key, how="left")
        wait = float(ctx.cfg.monitoring.window.label_wait_days)
        known_by = df[plan.timestamp].max() + timedelta(days=wait)
        info["labels_known_by"] = known_by.isoformat()
        if avail and avail in df.columns:
            df = df.with_columns(pl.when(pl.col(avail) <= known_by).then(pl.col(label))
                                 .otherwise(None).alias(label))
    info["start"] = str(df[plan.timestamp].min())
    info["end"] = str(df[plan.timestamp].max())
    return df, info
