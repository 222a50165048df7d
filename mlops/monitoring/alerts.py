"""The alerts file: one JSON line per alert under ``paths.home`` (``alerts.jsonl``).

Every alert (drift found by ``action=monitor`` or ``action=drift``, features inconsistent
online vs offline in ``action=consistency``) is appended here, by this one writer: a cron
job or a pager reads one file. The file is private to its owner (0600).

Example:
    >>> path = append_alert(home, series="drift:ref.parquet", reasons=["data drift in 3 features"],
    ...                     run="outputs/runs/x")  # doctest: +SKIP
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from mlops.home import open_private

ALERTS_FILE = "alerts.jsonl"


def append_alert(home: Path, *, reasons: list[str], run: str, **facts) -> str:
    """Append one alert (its time now, in UTC, its ``reasons``, the ``run`` directory that
    raised it and any other ``facts``: model, version, series, source, ...) to
    ``home/alerts.jsonl``; return the file's path."""
    path = Path(home) / ALERTS_FILE
    record = {"time": datetime.now(timezone.utc).isoformat(), **facts, "reasons": reasons,
              "run": run}
    with open_private(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return str(path)
