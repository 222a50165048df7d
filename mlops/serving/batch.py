"""Batch scoring: features + model over a whole dataset, lazily, into parquet.

:func:`score_events` scans the events lazily, splits them into entity partitions,
computes each partition's features with :func:`compute_features` in a worker thread
while the model scores the previous one, and appends each scored partition to one
parquet file; at most about two partitions are in memory. Each output row carries the
model name/version and the plan hash.

Sharding splits by entity (windows are per entity, so shards are independent): an
entity goes to shard ``fnv1a32_utf8(entity) % num_shards`` (:mod:`mlops.fnv`: FNV-1a,
32 bit, over UTF-8 bytes, vectorized in numpy), not polars' ``hash``, which is not stable
across polars versions. Concatenating every shard's output gives the
unsharded output row for row once sorted by an id (probabilities may differ in the last
bit: the model's sums run over differently sized batches).

Under ``rules.nonfinite: reject`` a row the engine calls unscorable (a non-finite input or
feature) is written with a null prediction and probability and the reason in
``unscored_reason``; under ``missing`` (the default) no feature is ever non-finite. Batch
scoring never calls the model on a non-finite value, so it never fails on one.

With ``store`` given, the latest prediction per entity is published into the store's
prediction cache (:func:`mlops.features.online.publish_predictions`; served by ``mode="batch"``).
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.errors import ConfigError, DataError
from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.features.online import OnlineStore, publish_predictions
from mlops.features.rules import STATUS
from mlops.fnv import fnv1a32_utf8_series
from mlops.serving.model.scoring import predict_scores
from mlops.serving.skew import ModelInfo, check_plan
from mlops.training.task import is_regression_model

_MODEL_ROWS = 100_000
UNSCORED = "unscored_reason"   # under rules.nonfinite: reject, why a row has no prediction


def shard_expr(entity: str, num_shards: int) -> pl.Expr:
    """Shard number of each row's entity (UInt32), for ``filter(shard_expr(...) == k)``."""
    return pl.col(entity).map_batches(
        lambda s: pl.Series(fnv1a32_utf8_series(s) % np.uint32(num_shards), dtype=pl.UInt32),
        return_dtype=pl.UInt32, is_elementwise=True)


def score_summary(path: str | os.PathLike, task: str) -> dict:
    """Rows and mean score of a predictions file: the flag rate for a classifier, the mean
    value for a regressor (and, under ``rules.nonfinite: reject``, how many rows were not scored)."""
    preds = pl.scan_parquet(path)
    unscored = [pl.col(UNSCORED).is_not_null().sum().alias("unscored")] \
        if UNSCORED in preds.collect_schema() else []
    if task == "regression":
        cols = [pl.col("prediction").mean().alias("mean_prediction")]
    else:
        cols = [pl.col("probability").mean().alias("mean_p"), pl.col("prediction").mean().alias("flag_rate")]
    return preds.select(pl.len().alias("rows"), *cols, *unscored).collect().row(0, named=True)


@dataclass
class BatchReport:
    """What :func:`score_events` wrote."""

    path: str
    rows: int
    entities_published: int
    seconds: float
    shard: int | None
    num_shards: int | None

    def as_dict(self) -> dict:
        return {"path": self.path, "rows": self.rows,
                "entities_published": self.entities_published,
                "seconds": round(self.seconds, 4), "shard": self.shard,
                "num_shards": self.num_shards}


def _check_shard(shard, num_shards) -> None:
    if (shard is None) != (num_shards is None):
        raise ConfigError("give both shard and num_shards, or neither; got shard="
                          f"{shard!r}, num_shards={num_shards!r}", key="serving.batch.shard")
    if num_shards is not None and not (isinstance(num_shards, int) and num_shards >= 1
                                       and isinstance(shard, int) and 0 <= shard < num_shards):
        raise ConfigError(f"shard must be an int in [0, num_shards); got shard={shard!r}, "
                          f"num_shards={num_shards!r}", key="serving.batch.shard",
                          fix="e.g. shard=0 num_shards=4")


def _part_filter(entity: str, num_shards: int, shard: int, parts: int, k: int) -> pl.Expr:
    """Rows of user shard ``shard`` (h % num_shards) and internal part ``k``
    ((h // num_shards) % parts), from one hash evaluation per row."""
    def keep(s: pl.Series) -> pl.Series:
        h = fnv1a32_utf8_series(s)
        ok = (h % np.uint32(num_shards) == shard) & ((h // np.uint32(num_shards))
                                                     % np.uint32(parts) == k)
        return pl.Series(ok, dtype=pl.Boolean)
    return pl.col(entity).map_batches(keep, return_dtype=pl.Boolean, is_elementwise=True)


def score_events(plan: FeaturePlan, model, info: ModelInfo,
                 events: pl.LazyFrame | pl.DataFrame | str, out_path: str | os.PathLike, *,
                 keep: list[str] | tuple[str, ...] = (),
                 shard: int | None = None, num_shards: int | None = None,
                 store: OnlineStore | None = None, include_features: bool = False,
                 scored_at: datetime | None = None, parts: int = 2) -> BatchReport:
    """Score every event and write one predictions parquet file.

    ``events`` is a frame, a LazyFrame or a parquet path/glob. Output columns: entity,
    timestamp, ``keep`` columns, [features], ``prediction`` (a classifier's class at
    ``info.decision_threshold``, the version's policy; a regressor's value),
    ``probability`` (classifiers; null for a regressor), ``model_name``, ``model_version``,
    ``plan_hash`` (and ``unscored_reason`` under ``rules.nonfinite: reject``).

    The work is split into ``parts`` entity partitions (by the same stable hash as the
    shards) and pipelined: while the model scores part k (Python), polars computes the
    features of part k+1 in a worker thread and another thread appends scored slices to
    the parquet file as row groups (both release the GIL). Memory holds about two parts, not the
    dataset. (A single ``sink_parquet`` cannot overlap the two: window features need the
    whole part sorted by (entity, time) before the first row comes out.) Rows are sorted
    by (entity, time) within each part.

    Example:
        >>> score_events(plan, model, ModelInfo("fraud", "3", plan.spec_hash),
        ...              "events/*.parquet", "preds.parquet", keep=["transaction_id"],
        ...              shard=0, num_shards=4)  # doctest: +SKIP
    """
    check_plan(info.plan_hash, plan, model=info)
    _check_shard(shard, num_shards)
    if not (isinstance(parts, int) and parts >= 1):
        raise ConfigError(f"must be an int >= 1; got {parts!r}", key="serving.batch.parts")
    t0 = time.perf_counter()
    lf = pl.scan_parquet(events) if isinstance(events, (str, os.PathLike)) else events.lazy()
    names = lf.collect_schema().names()
    missing = [c for c in (*plan.source_columns, *keep) if c not in names]
    if missing:
        raise DataError(f"the events lack column(s) {missing}; they have {names}",
                        key="data", fix="check the data source or `keep`")
    job = _ScoringJob(plan, model, info, lf, list(keep), info.decision_threshold,
                      num_shards or 1, shard if num_shards else 0, parts, include_features)
    out_path = str(out_path)
    rows = job.write(out_path)
    published = publish_predictions(plan, pl.scan_parquet(out_path), store,
                                    scored_at=scored_at) if store is not None else 0
    return BatchReport(out_path, rows, published, time.perf_counter() - t0, shard, num_shards)


@dataclass
class _ScoringJob:
    """One :func:`score_events` run: features of entity part k, the model on them, and the
    pipelined write of every part into one parquet file."""

    plan: FeaturePlan
    model: object
    info: ModelInfo
    lf: pl.LazyFrame
    keep: list[str]
    threshold: float
    num_shards: int
    shard: int
    parts: int
    include_features: bool

    def __post_init__(self):
        self.reject = self.plan.rules.reject  # unscorable rows: no prediction, a reason
        fschema = compute_features(self.plan, self.lf, keep=self.keep).collect_schema()
        base = [c for c in fschema.names() if c not in self.plan.feature_names]
        self.out_cols = [*base, *(self.plan.feature_names if self.include_features else [])]
        # a classifier's prediction is its class, a regressor's its value (no probability)
        self.regression = is_regression_model(self.model)
        self.out_schema = {**{c: fschema[c] for c in self.out_cols},
                           "prediction": pl.Float64 if self.regression else pl.Int64,
                           "probability": pl.Float64, "model_name": pl.String,
                           "model_version": pl.String, "plan_hash": pl.String,
                           **({UNSCORED: pl.String} if self.reject else {})}

    def features_of(self, k: int) -> pl.DataFrame:
        """Features of entity part ``k`` of this shard."""
        part = self.lf if self.num_shards == 1 and self.parts == 1 else self.lf.filter(
            _part_filter(self.plan.entity, self.num_shards, self.shard, self.parts, k))
        return compute_features(self.plan, part, keep=self.keep, status=self.reject).collect()

    def score(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The output rows of ``batch``: kept columns, prediction, probability, lineage
        (the model never sees an unscorable row: it gets nulls and its reason)."""
        ok = batch[STATUS].is_null() if self.reject else None
        scored = batch if ok is None or ok.all() else batch.filter(ok)
        labels, probs = predict_scores(self.model, scored.select(self.plan.feature_names),
                                       threshold=self.threshold)
        pred = pl.Series("prediction", labels, dtype=self.out_schema["prediction"], strict=False)
        prob = pl.Series("probability", [None] * scored.height if self.regression else probs,
                         dtype=pl.Float64)
        if scored is not batch:  # back to every row, nulls where unscorable
            rows = np.flatnonzero(ok.to_numpy())
            pred = pl.Series("prediction", [None] * batch.height, dtype=pred.dtype).scatter(rows, pred)
            prob = pl.Series("probability", [None] * batch.height, dtype=pl.Float64).scatter(rows, prob)
        return batch.select(self.out_cols).with_columns(
            pred, prob,
            pl.lit(self.info.name, pl.String).alias("model_name"),
            pl.lit(str(self.info.version), pl.String).alias("model_version"),
            pl.lit(self.plan.spec_hash, pl.String).alias("plan_hash"),
            *([batch[STATUS].alias(UNSCORED)] if self.reject else []))

    def write(self, out_path: str) -> int:
        """Score every part into ``out_path`` (atomically: a temp file, then a rename);
        return the row count."""
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        tmp = f"{out_path}.tmp-{os.getpid()}"
        sink = _ParquetSink(tmp)
        # three lanes: features of part k+1 (polars) and parquet writes (arrow) run in worker
        # threads with the GIL released, while this thread runs the model on part k
        compute = ThreadPoolExecutor(1, thread_name_prefix="mlops-features")
        try:
            pending = compute.submit(self.features_of, 0)
            for k in range(self.parts):
                feats = pending.result()
                if k + 1 < self.parts:
                    pending = compute.submit(self.features_of, k + 1)
                # the model is called on slices: large one-hot temporaries of a single huge
                # call are slower (cache misses) than several 100k-row calls
                for start in range(0, feats.height, _MODEL_ROWS):
                    sink.put(self.score(feats.slice(start, _MODEL_ROWS)).to_arrow())
            sink.finish(self.out_schema)
            os.replace(tmp, out_path)
        finally:
            compute.shutdown(wait=True, cancel_futures=True)
            sink.abort()
        return sink.rows


class _ParquetSink:
    """Arrow tables appended as row groups of one parquet file by a writer thread, in order."""

    def __init__(self, path: str):
        self.path, self.rows, self.writer, self.writes = path, 0, None, []
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="mlops-parquet")

    def put(self, table: pa.Table) -> None:
        """Queue ``table`` for writing (one worker: the order is kept)."""
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writes.append(self.pool.submit(self.writer.write_table, table))
        self.rows += table.num_rows

    def finish(self, schema: dict) -> None:
        """Wait for every write and close the file (no rows: still a valid, typed file)."""
        for f in self.writes:
            f.result()
        if self.writer is None:
            pl.DataFrame(schema=schema).write_parquet(self.path)
        else:
            self.writer.close()
            self.writer = None

    def abort(self) -> None:
        """Stop the writer thread; close and remove a file that was not finished."""
        self.pool.shutdown(wait=True)
        if self.writer is not None:
            self.writer.close()
        if os.path.exists(self.path):
            os.remove(self.path)
