"""Drift over time: every monitor and drift run appends its per-feature statistics here.

The history is one JSON-lines file (``<paths.home>/monitoring/history.jsonl``), one line per
run: which series it belongs to (``monitor:<model>`` or ``drift:<reference>``), run id and
directory, run time, the window bounds, the dataset verdict, the multivariate verdict,
performance chunks (realized, and estimated when an estimator provides them), whether the
run alerted, and per feature ``test, threshold, score, status, ref_rows, cur_rows``.

Concurrent runs (parallel sweeps, cron overlapping a manual run) are safe: a record is one
``write`` on a file opened with ``O_APPEND`` under an exclusive ``flock``, so lines never
interleave. A line cut short by a crash is skipped on reading and counted.

Each run sits on the time axis at ``at``: the end of its data window when it has one (a
backfill of last month's windows lands on last month), else the run time.
"""
from __future__ import annotations

import fcntl
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

HISTORY_FILE = Path("monitoring") / "history.jsonl"
FEATURE_KEYS = ("test", "threshold", "score", "status", "ref_rows", "cur_rows")


def run_record(drift: dict, *, series: str, kind: str, run_id: str, run_dir: str, time: str,
               window: dict | None = None, alerted: bool = False,
               multivariate: dict | None = None, performance: dict | None = None) -> dict:
    """The history line of one run from its drift result (``detect_drift``'s dict).

    >>> rec = run_record({"features": {"x": {"test": "ks", "threshold": 0.05, "score": 0.3,
    ...                   "status": "no_drift", "ref_rows": 100, "cur_rows": 80, "psi": 0.01}},
    ...                   "dataset_status": "no_drift", "drift_share": 0.0, "n_drifted": 0,
    ...                   "n_features": 1, "cur_rows": 80},
    ...                  series="drift:ref.parquet", kind="drift", run_id="r1", run_dir="/tmp/r1",
    ...                  time="2026-01-02T00:00:00+00:00")
    >>> rec["at"], rec["features"]["x"]["score"], "psi" in rec["features"]["x"]
    ('2026-01-02T00:00:00+00:00', 0.3, False)
    """
    window = {k: v for k, v in (window or {}).items() if k in ("start", "end") and v}
    mv = None
    if multivariate and multivariate.get("auc") is not None:
        mv = {k: multivariate.get(k) for k in ("auc", "threshold", "status", "drift")}
    return {
        "series": series, "kind": kind, "run_id": run_id, "run_dir": run_dir, "time": time,
        "at": window.get("end") or time, "window": window or None,
        "cur_rows": drift.get("cur_rows"), "dataset_status": drift.get("dataset_status"),
        "drift_share": drift.get("drift_share"), "n_drifted": drift.get("n_drifted"),
        "n_features": drift.get("n_features"), "alerted": bool(alerted), "multivariate": mv,
        "performance": performance or None,
        "features": {name: {k: f.get(k) for k in FEATURE_KEYS}
                     for name, f in drift.get("features", {}).items()},
    }


def append(path: str | os.PathLike, record: dict) -> Path:
    """Append one record as one line, atomically with respect to other writers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:  # a regular file takes it in one write; loop for the rare short write
            view = view[os.write(fd, view):]
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return path


def read(path: str | os.PathLike, *, series: str | None = None,
         last: int | None = None) -> tuple[list[dict], int]:
    """Records of ``series`` (all when None), oldest first, at most the ``last`` ones by ``at``;
    plus the number of unreadable lines skipped."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    records, bad = [], 0
    with open(path, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # never read half of a line being written
        try:
            lines = fh.read().splitlines()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    for raw in lines:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            bad += 1
            continue
        if not isinstance(rec, dict) or "at" not in rec:
            bad += 1
            continue
        if series is None or rec.get("series") == series:
            records.append(rec)
    records.sort(key=lambda r: (str(r["at"]), str(r.get("time"))))
    if last is not None:
        records = records[-last:] if last > 0 else []
    return records, bad


def feature_trends(records: list[dict]) -> dict[str, dict]:
    """Per feature its points over the runs: ``{"test", "threshold", "points": [(at, score,
    status)]}``; test and threshold are the latest run's (the line it is drawn against).

    >>> recs = [{"at": "2026-01-01", "features": {"x": {"test": "ks", "threshold": 0.05,
    ...          "score": 0.4, "status": "no_drift"}}},
    ...         {"at": "2026-01-02", "features": {"x": {"test": "ks", "threshold": 0.05,
    ...          "score": 0.01, "status": "drift"}}}]
    >>> feature_trends(recs)["x"]["points"]
    [('2026-01-01', 0.4, 'no_drift'), ('2026-01-02', 0.01, 'drift')]
    """
    out: dict[str, dict] = {}
    for rec in records:
        for name, f in (rec.get("features") or {}).items():
            entry = out.setdefault(name, {"points": []})
            entry.update(test=f.get("test"), threshold=f.get("threshold"))
            entry["points"].append((rec["at"], f.get("score"), f.get("status")))
    return out


def performance_points(records: list[dict]) -> dict[str, list[tuple[str, float | None]]]:
    """Performance chunks of all runs on one time axis: ``{"realized": [(start, value)],
    "estimated": [...]}``; a chunk seen by several runs keeps the latest run's value."""
    series: dict[str, dict[str, float | None]] = {"realized": {}, "estimated": {}}
    for rec in records:
        perf = rec.get("performance") or {}
        for kind in series:
            for chunk in perf.get(kind) or []:
                if chunk.get("start") is not None:
                    series[kind][str(chunk["start"])] = chunk.get("value")
    return {kind: sorted(points.items()) for kind, points in series.items() if points}


def record_run(home: Path, result: dict, *, series: str, kind: str, run_dir: str, last: int,
               window: dict | None = None, alerted: bool = False) -> tuple[list[dict], int]:
    """Append the run ``result`` (monitor.json or drift.json) to ``home``'s history; return
    the ``last`` records of its ``series`` (this run included) and the lines skipped."""
    path = Path(home) / HISTORY_FILE
    perf = result.get("performance") or {}
    append(path, run_record(
        result, series=series, kind=kind, run_id=uuid.uuid4().hex[:12], run_dir=run_dir,
        time=datetime.now(timezone.utc).isoformat(), window=window, alerted=alerted,
        multivariate=result.get("multivariate"),
        performance=performance_chunks(perf) if perf else None))
    return read(path, series=series, last=last)


def performance_chunks(perf: dict) -> dict:
    """Realized chunks of a ``performance`` block, and estimated ones when an estimator
    filled ``performance.estimated``."""
    metric = perf.get("metric")
    realized = [{"start": c.get("start"), "value": c.get("value")} for c in perf.get("chunks") or []]
    estimated = []
    block = perf.get("estimated")
    if isinstance(block, dict):
        for c in block.get("chunks") or []:
            value = c.get("estimated")
            value = value.get(metric) if isinstance(value, dict) else value
            estimated.append({"start": c.get("start"), "value": value})
    return {"metric": metric, "realized": realized, "estimated": estimated}
