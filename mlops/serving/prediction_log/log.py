"""Append-only prediction log: every prediction the server makes, durable before it is answered.

Each record holds the request id, entity, event timestamp, the feature values the model
saw (a struct column ``features``), ``prediction`` (the class for a classifier, the value
for a regressor; null when the server abstained) and ``probability`` (classifiers only),
model name/version, A/B variant, who answered the record (``served_by``: model,
fallback, default (a declared value), abstain, shadow), warnings, the breaker state and
``served_at``. :func:`model_score` is the model's own output of a row (what monitoring
compares with the reference). Read it back with
:func:`mlops.serving.prediction_log.fleet.scan_prediction_log` (every replica's parquet
parts plus the journal not yet compacted; the one reader every consumer uses).

Durability (``durable=True``, the default): :meth:`PredictionLog.append_frame` queues a
micro-batch's frame and returns a future; a writer thread appends everything queued to
a write-ahead journal segment (:mod:`mlops.serving.prediction_log.journal`) and makes it durable with
ONE ``fdatasync`` (group commit), then resolves the futures. The server answers a
request only after its future resolved, so **an acknowledged prediction survives
kill -9**. A compactor thread folds each segment into a parquet part
(``part-<time>-<run>-<seq>.parquet``) once it holds ``flush_records`` records or is
``flush_seconds`` old, and on :meth:`close`; opening a log compacts segments left by a
crashed server (:func:`mlops.serving.prediction_log.compaction.recover`). A damaged journal
record costs only itself: every intact record before and after it is kept, its bytes go
to ``quarantine/``, and the loss is counted (:attr:`PredictionLog.damage`, ``/ready``,
``/metrics``) and logged in one line.

:meth:`PredictionLog.append_rows` is the same for rows given as lists in the schema's
column order (the single-record fast path): they are queued as JSON bytes and written as
one journal rows record, with no frame built per request.

``durable=False`` is the old buffered mode (records kept in memory and written as a
parquet part every ``flush_records`` / ``flush_seconds``): a crash loses that buffer.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future

import polars as pl

from mlops.features.compile import FeaturePlan
from mlops.home import FILE_MODE, private_dir
from mlops.serving.prediction_log import journal
from mlops.serving.prediction_log.compaction import Compaction, compact, recover
from mlops.serving.prediction_log.fleet import JOURNAL_DIR

BASE_SCHEMA = {
    "request_id": pl.String, "entity": pl.String, "event_ts": pl.Datetime("us"),
    "prediction": pl.Float64, "probability": pl.Float64, "model_name": pl.String,
    "model_version": pl.String, "plan_hash": pl.String, "variant": pl.String,
    "served_by": pl.String, "warnings": pl.List(pl.String), "breaker_state": pl.String,
    "served_at": pl.Datetime("us", "UTC"),
}
log = logging.getLogger(__name__)


def feature_schema(plan: FeaturePlan) -> pl.Struct:
    """Struct dtype of the ``features`` column: Float64 numerics, String categoricals."""
    return pl.Struct({f.name: (pl.String if f.kind == "categorical" else pl.Float64)
                      for f in plan.features})


def model_score() -> pl.Expr:
    """The model's own output of a logged row, as monitoring compares it with the
    reference's ``prediction``: the probability (classifier) or the value (regressor);
    null when the model did not answer (``default``: a declared value; ``abstain``).

    Logs written before regressors had no probability kept the value in ``probability``;
    ``coalesce`` reads both."""
    return (pl.when(pl.col("served_by").is_in(["default", "abstain"])).then(None)
            .otherwise(pl.coalesce(pl.col("probability"), pl.col("prediction"))))


class PredictionLog:
    """The prediction log of one server: journal + group commit + background compaction.

    Example:
        >>> log = PredictionLog("/tmp/plog", plan, flush_records=500)  # doctest: +SKIP
        >>> log.append_frame(frame).result()   # durable once this returns  # doctest: +SKIP
        >>> log.close()  # compacts the journal into parquet           # doctest: +SKIP
    """

    def __init__(self, directory: str | os.PathLike, plan: FeaturePlan, *,
                 flush_records: int = 1000, flush_seconds: float = 5.0, durable: bool = True):
        self.directory = str(directory)
        private_dir(self.directory)  # entity ids and features: 0700, files 0600
        self.journal_dir = os.path.join(self.directory, JOURNAL_DIR)
        self.schema = {**BASE_SCHEMA, "features": feature_schema(plan)}
        self.flush_records = int(flush_records)
        self.flush_seconds = float(flush_seconds)
        self.durable = bool(durable)
        # (frame | JSON rows bytes, rows, future)
        self._queue: list[tuple[pl.DataFrame | bytes, int, Future | None]] = []
        self._cond = threading.Condition()
        self._closed = self._rotate = False
        self._pending = 0            # rows appended, not yet in a parquet part
        self._seq = 0
        self._run_id = uuid.uuid4().hex[:8]  # several servers may share one directory
        self.written_records = 0
        self.written_files = 0
        self.commits = 0             # group commits (fsyncs) of the journal
        self.last_error: str | None = None
        self.recovered = Compaction()  # what opening the log found (segments a crash left)
        self.damage = Compaction()     # every damaged, torn or unreadable byte found so far
        if self.durable:  # segments left by a crashed server become parquet parts now
            self.recovered = recover(self.journal_dir, self.directory, self.schema)
            self.written_files += self.recovered.segments
            self._count_damage(self.recovered, "recovery of a crashed server's journal")
        self._compact_queue: list[journal.Segment | None] = []
        self._buffer: list[pl.DataFrame] = []  # buffered mode only
        self._threads = [threading.Thread(target=self._write_loop, name="prediction-log",
                                          daemon=True)]
        if self.durable:
            self._threads.append(threading.Thread(target=self._compact_loop, daemon=True,
                                                  name="prediction-log-compact"))
        for t in self._threads:
            t.start()

    def append(self, records: Sequence[dict]) -> Future | None:
        """Queue records (dicts with the schema's keys; missing keys become null)."""
        if records:
            return self.append_frame(pl.DataFrame(list(records), schema=self.schema,
                                                  strict=False))
        return None

    def append_frame(self, frame: pl.DataFrame) -> Future | None:
        """Queue a frame of records (cast to the schema here, so every part has the same
        schema even when a column is all null). Durable mode: returns a future that
        resolves once the records are fsynced (raises if the journal write failed)."""
        if frame.height == 0:
            return None
        if frame.schema != self.schema:
            frame = frame.select([(pl.col(c) if c in frame.columns else pl.lit(None))
                                  .cast(t, strict=False).alias(c)
                                  for c, t in self.schema.items()])
        return self._enqueue(frame, frame.height)

    def append_rows(self, rows: list[list]) -> Future | None:
        """Queue rows given as lists in the schema's column order (datetimes as epoch
        microseconds, ``features`` as a list in its struct's field order); same
        durability contract as :meth:`append_frame`."""
        if not rows:
            return None
        return self._enqueue(json.dumps(rows).encode("utf-8"), len(rows))

    def _enqueue(self, item: pl.DataFrame | bytes, rows: int) -> Future | None:
        done = Future() if self.durable else None
        with self._cond:
            if self._closed:
                raise RuntimeError("the prediction log is closed")
            self._queue.append((item, rows, done))
            self._pending += rows
            if self.durable or self._pending >= self.flush_records:
                self._cond.notify_all()
        return done

    def _frame(self, item: pl.DataFrame | bytes) -> pl.DataFrame:
        return item if isinstance(item, pl.DataFrame) else \
            journal.rows_frame(json.loads(item), self.schema)

    # ------------------------------------------------------------------ writer thread
    def _next_stem(self) -> str:
        self._seq += 1
        return f"{time.time_ns()}-{self._run_id}-{self._seq:06d}"

    def _write_loop(self) -> None:
        segment: journal.Segment | None = None
        opened = time.monotonic()  # durable: when the segment opened; else: last flush
        while True:
            with self._cond:
                while not (self._queue or self._closed or self._rotate):
                    timed = segment is not None or not self.durable
                    left = self.flush_seconds - (time.monotonic() - opened)
                    if timed and left <= 0:
                        break
                    self._cond.wait(left if timed else None)
                items, self._queue = self._queue, []
                rotate, self._rotate = self._rotate, False
                closing = self._closed
            aged = time.monotonic() - opened >= self.flush_seconds
            if not self.durable:
                self._flush_buffer(items, force=rotate or closing or aged)
                if not self._buffer:
                    opened = time.monotonic()
                if closing:
                    return
                continue
            if items:
                if segment is None:
                    segment, opened = self._open_segment(), time.monotonic()
                segment = self._commit(segment, items)
            if segment is not None and (rotate or closing or aged
                                        or segment.records >= self.flush_records):
                self._hand_off(segment)
                segment = None
            if closing:
                with self._cond:
                    if not self._queue:
                        self._hand_off(None)  # tells the compactor nothing more will come
                        return

    def _open_segment(self) -> journal.Segment | None:
        try:
            return journal.Segment.create(self.journal_dir, self._next_stem(), self.schema)
        except OSError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None

    def _commit(self, segment, items) -> journal.Segment | None:
        """Append every queued item and fsync once (group commit): frames as one Arrow
        record, JSON rows as one rows record."""
        lost = sum(n for _, n, _ in items)
        before = segment.records if segment is not None else 0
        size = segment.bytes if segment is not None else 0
        try:
            if segment is None:
                raise OSError(self.last_error or "no journal segment")
            _append_items(segment, items)
            segment.sync()
        except Exception as exc:  # not durable: those requests are not acknowledged
            self.last_error = f"{type(exc).__name__}: {exc}"
            if segment is not None:
                segment.records = before  # its compaction must not count them
                segment.discard_after(size)  # nor read them: their requests get 503
            with self._cond:
                self._pending -= lost
            for _, _, done in items:
                done.set_exception(OSError(f"the prediction log could not be written: {exc}"))
            if segment is not None:  # a torn record ends a segment: start a fresh one
                self._hand_off(segment)
            return None
        self.commits += 1
        for _, _, done in items:
            done.set_result(None)
        return segment

    def _flush_buffer(self, items, *, force: bool) -> None:
        """Buffered mode: keep frames until a flush threshold, then one parquet part."""
        self._buffer += [self._frame(f) for f, _, _ in items]
        rows = sum(f.height for f in self._buffer)
        if not self._buffer or not (force or rows >= self.flush_records):
            return
        name = journal.part_name(self._next_stem())
        tmp = os.path.join(self.directory, f".{name}.tmp")
        try:
            pl.concat(self._buffer, how="vertical").write_parquet(tmp)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, os.path.join(self.directory, name))
        except Exception as exc:  # keep the buffer; the next flush retries
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        self._buffer = []
        self.written_records += rows
        self.written_files += 1
        with self._cond:
            self._pending -= rows
            self._cond.notify_all()

    # ------------------------------------------------------------------ compactor thread
    def _hand_off(self, segment: journal.Segment | None) -> None:
        with self._cond:
            self._compact_queue.append(segment)
            self._cond.notify_all()

    def _compact_loop(self) -> None:
        while True:
            with self._cond:
                while not self._compact_queue:
                    self._cond.wait()
                segment = self._compact_queue.pop(0)
            if segment is None:  # the writer has finished: nothing more will come
                return
            while True:
                try:
                    done = compact(segment.path, self.directory, self.schema, segment.valid_bytes)
                    break
                except Exception as exc:  # retry: the records stay durable in the journal
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    time.sleep(0.5)
            self._count_damage(done, "compaction")
            rows = done.rows
            segment.close()
            self.written_records += rows
            self.written_files += 1 if rows else 0
            with self._cond:
                self._pending -= segment.records
                self._cond.notify_all()

    def _count_damage(self, done: Compaction, when: str) -> None:
        """Add what ``done`` found to :attr:`damage`; one log line when it lost anything."""
        if not done.lossy:
            if done.segments and when.startswith("recovery"):
                log.info("prediction log: %s: %d segment(s), %d record(s) kept", when, done.segments, done.rows)
            return
        self.damage.add(Compaction(damaged_regions=done.damaged_regions, damaged_bytes=done.damaged_bytes,
                                   torn_bytes=done.torn_bytes, kept_whole=done.kept_whole,
                                   quarantined=list(done.quarantined)))
        log.warning("prediction log: %s: %d segment(s), %d record(s) kept, %d damaged region(s) "
                    "(%d bytes), %d torn tail byte(s), %d segment(s) kept whole; moved to %s",
                    when, done.segments, done.rows, done.damaged_regions, done.damaged_bytes,
                    done.torn_bytes, done.kept_whole, ", ".join(done.quarantined))

    # ------------------------------------------------------------------ control
    def pending(self) -> int:
        """Records appended but not yet in a parquet part (durable mode: in the journal)."""
        with self._cond:
            return self._pending

    def flush(self, timeout: float = 10.0) -> None:
        """Compact everything appended so far into parquet and wait (or timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._rotate = True
            self._cond.notify_all()
            while self._pending and any(t.is_alive() for t in self._threads):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(min(left, 0.05))
                if self._pending and not self.durable:
                    self._rotate = True
                    self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Commit and compact everything, stop the threads. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)


def _append_items(segment: journal.Segment, items: list) -> None:
    """Frames as one Arrow record, JSON rows as one rows record (their order within a
    commit does not matter: every record carries its own times)."""
    frames = [f for f, _, _ in items if isinstance(f, pl.DataFrame)]
    if frames:
        segment.append(frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical"))
    rows = [(r, n) for r, n, _ in items if not isinstance(r, pl.DataFrame)]
    if rows:  # JSON arrays joined into one: b"[" + inner parts + b"]"
        payload = rows[0][0] if len(rows) == 1 else \
            b"[" + b",".join(r[1:-1] for r, _ in rows) + b"]"
        segment.append_rows(payload, sum(n for _, n in rows))
