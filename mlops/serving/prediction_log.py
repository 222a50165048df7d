"""Append-only prediction log: every prediction the server makes, as parquet parts.

Each record holds the request id, entity, event timestamp, the feature values the model
saw (a struct column ``features``), prediction and probability, model name/version,
A/B variant, who answered (``served_by``: model, fallback, default, cache), warnings,
the breaker state and ``served_at``. Read it back with::

    pl.scan_parquet(f"{log_dir}/*.parquet")

Durability: records are buffered in memory and written by a background thread, one
new file per flush (``part-<time>-<seq>.parquet``, written to a temporary name and
renamed, so readers never see half a file). A flush happens every ``flush_records``
records, every ``flush_seconds`` seconds, and on :meth:`PredictionLog.close` (the
server calls it on graceful shutdown). **A crash (SIGKILL, power loss) loses at most
the records still in the buffer**, i.e. up to ``flush_records`` records or
``flush_seconds`` seconds of traffic; files already written are never rewritten.

Requests never wait for disk: :meth:`PredictionLog.append_frame` (the server builds
one columnar frame per micro-batch) only casts it and appends it to a list under a lock.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence

import polars as pl

from mlops.features.compile import FeaturePlan
from mlops.home import FILE_MODE, private_dir

BASE_SCHEMA = {
    "request_id": pl.String, "entity": pl.String, "event_ts": pl.Datetime("us"),
    "prediction": pl.Int64, "probability": pl.Float64, "model_name": pl.String,
    "model_version": pl.String, "plan_hash": pl.String, "variant": pl.String,
    "served_by": pl.String, "warnings": pl.List(pl.String), "breaker_state": pl.String,
    "served_at": pl.Datetime("us", "UTC"),
}


def feature_schema(plan: FeaturePlan) -> pl.Struct:
    """Struct dtype of the ``features`` column: Float64 numerics, String categoricals."""
    return pl.Struct({f.name: (pl.String if f.kind == "categorical" else pl.Float64)
                      for f in plan.features})


class PredictionLog:
    """Buffered, append-only parquet log written off the request path.

    Example:
        >>> log = PredictionLog("/tmp/plog", plan, flush_records=500)  # doctest: +SKIP
        >>> log.append([{"request_id": "r1", ...}])                    # doctest: +SKIP
        >>> log.close()  # flushes                                     # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike, plan: FeaturePlan, *,
                 flush_records: int = 1000, flush_seconds: float = 5.0):
        self.directory = str(directory)
        private_dir(self.directory)  # entity ids and features: 0700, files 0600
        self.schema = {**BASE_SCHEMA, "features": feature_schema(plan)}
        self.flush_records = int(flush_records)
        self.flush_seconds = float(flush_seconds)
        self._buffer: list[pl.DataFrame] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._seq = 0
        self._inflight = 0
        self._run_id = uuid.uuid4().hex[:8]  # several servers may share one directory
        self.written_records = 0
        self.written_files = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, records: Sequence[dict]) -> None:
        """Queue records (dicts with the schema's keys; missing keys become null)."""
        if records:
            self.append_frame(pl.DataFrame(list(records), schema=self.schema, strict=False))

    def append_frame(self, frame: pl.DataFrame) -> None:
        """Queue a frame of records (columns of the schema; cast to it here, so every
        part file has the same schema even when a column is all null)."""
        if frame.height == 0:
            return
        frame = frame.select([(pl.col(c) if c in frame.columns else pl.lit(None))
                              .cast(t, strict=False).alias(c) for c, t in self.schema.items()])
        with self._lock:
            if self._closed:
                raise RuntimeError("the prediction log is closed")
            self._buffer.append(frame)
            self._buffered += frame.height
            full = self._buffered >= self.flush_records
        if full:
            self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self._flush_once()
            with self._lock:
                if self._closed and not self._buffer:
                    return

    def _flush_once(self) -> int:
        with self._lock:
            batch, self._buffer = self._buffer, []
            n, self._buffered = self._buffered, 0
            self._inflight = n
        if not batch:
            return 0
        try:
            frame = pl.concat(batch, how="vertical")
            self._seq += 1
            name = f"part-{time.time_ns()}-{self._run_id}-{self._seq:06d}.parquet"
            tmp = os.path.join(self.directory, f".{name}.tmp")
            frame.write_parquet(tmp)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, os.path.join(self.directory, name))
            self.written_records += n
            self.written_files += 1
        except Exception as exc:  # never kill the writer thread; surface it in /ready
            self.last_error = f"{type(exc).__name__}: {exc}"
            with self._lock:  # put the records back so the next flush retries them
                self._buffer[:0] = batch
                self._buffered += n
                self._inflight = 0
            return 0
        with self._lock:
            self._inflight = 0
        return n

    def pending(self) -> int:
        """Records buffered or being written, not yet on disk."""
        with self._lock:
            return self._buffered + self._inflight

    def flush(self, timeout: float = 10.0) -> None:
        """Ask the writer to flush now and wait until the buffer is empty (or timeout)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.pending() and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.005)
            self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """Flush everything and stop the writer thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if self.pending():  # writer died or timed out: last attempt in this thread
            self._flush_once()
