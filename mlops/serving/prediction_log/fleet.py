"""A fleet's prediction log: one directory per replica under one log dir, read together.

Every server of a fleet (``serving.replica_id``) journals under ``<log_dir>/<replica id>/``:
its own journal, parquet parts and quarantine, so no replica compacts, rotates or recovers
another's files, and a replica restarted under the same id recovers its own crashed
journal. Readers give :func:`scan_prediction_log` the log dir and get every replica's
records, plus those a server of the older single-replica layout wrote directly under the
log dir (nothing is lost on upgrade), each record once.

"Each record once": a record is one row a server committed to its journal. It is known
by where it was first written: the segment's stem (``<time>-<run>-<seq>``, unique across
processes) and its row within that segment, and a compacted part keeps both
(``part-<stem>.parquet``, same rows in the same order). A record met twice in one scan
(a segment and its part both present after a compactor was killed between the two
steps, a reader racing a compaction, a replica directory copied in twice) counts once.
Two records with the same ``request_id`` are two answered predictions and both count:
a client's retry without ``Idempotency-Key``, a replay run twice, and an experiment's
shadow row (its variant's score of the same request) all repeat request ids.

Example:
    >>> default_replica_id(8081, host="node-a.internal")
    'node-a.internal-8081'
    >>> scan_prediction_log(".mlops/predictions").collect().height  # doctest: +SKIP
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import polars as pl

from mlops.serving.prediction_log import journal
from mlops.serving.prediction_log.compaction import QUARANTINE_DIR

JOURNAL_DIR = "journal"
REPLICA_COLUMN = "replica"  # which replica logged the row (null: the single-replica layout)
_REPLICA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RESERVED = (JOURNAL_DIR, QUARANTINE_DIR)
_ORIGIN, _POS = "__log_origin", "__log_pos"


def default_replica_id(port: int, host: str | None = None) -> str:
    """``<host name>-<port>``: two servers of one machine cannot listen on one port and
    two machines have two host names, so replicas never collide, and a replica restarted
    on its port keeps its id (and recovers its own journal). Port 0 (the system picks
    one) adds the process id: such a server has no stable address to be known by."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", host or socket.gethostname()).strip("-._")
    suffix = f"{port}" if port else f"0-pid{os.getpid()}"
    return f"{(host or 'host')[:100]}-{suffix}"


def replica_id_problem(value: str) -> str | None:
    """Why ``value`` cannot name a replica's log directory (None: it can)."""
    if not _REPLICA_ID.fullmatch(value):
        return ("must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or "
                f"digit (it names a directory); got {value!r}")
    if value in _RESERVED:
        return f"must not be {value!r} (a directory of the log itself)"
    return None


def replica_log_dir(log_dir: str | os.PathLike, replica_id: str) -> str:
    """Where replica ``replica_id`` journals: ``<log_dir>/<replica_id>``."""
    return os.path.join(os.fspath(log_dir), replica_id)


def _holds_log(directory: Path) -> bool:
    return (directory / JOURNAL_DIR).is_dir() or any(directory.glob("*.parquet"))


def replica_dirs(log_dir: str | os.PathLike) -> list[tuple[str | None, Path]]:
    """``(replica id, directory)`` of every log under ``log_dir``; the id is None for
    records of the single-replica layout (directly under ``log_dir``)."""
    root = Path(log_dir)
    if not root.is_dir():
        return []
    found: list[tuple[str | None, Path]] = [(None, root)] if _holds_log(root) else []
    for p in sorted(root.iterdir()):
        if p.is_dir() and replica_id_problem(p.name) is None and _holds_log(p):
            found.append((p.name, p))
    return found


def _scan_directory(directory: Path, replica: str | None) -> list[pl.LazyFrame]:
    """One replica's records: journal segments not yet compacted, then the parquet parts
    (read in that order, a segment compacted meanwhile is counted from the journal), each
    row tagged with its origin (segment stem, row) and its replica."""
    pending = journal.journal_frames(directory / JOURNAL_DIR, directory)
    skip = {journal.part_name(stem) for stem in pending}
    files = sorted(str(p) for p in directory.glob("*.parquet") if p.name not in skip)
    # parts written by an older version of the log (an integer prediction column) are
    # scanned on their own and relaxed into today's types
    by_schema: dict[str, list[str]] = {}
    for f in files:
        by_schema.setdefault(str(pl.read_parquet_schema(f)), []).append(f)
    tag = pl.lit(replica, dtype=pl.String).alias(REPLICA_COLUMN)
    stem = pl.col(_ORIGIN).str.extract(r"part-(.+)\.parquet$").fill_null(pl.col(_ORIGIN))
    frames = [pl.scan_parquet(fs, include_file_paths=_ORIGIN)
              .with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over(_ORIGIN).alias(_POS))
              .with_columns(stem.alias(_ORIGIN), tag) for fs in by_schema.values()]
    frames += [f.lazy().with_row_index(_POS).with_columns(pl.lit(s).alias(_ORIGIN), tag)
               for s, f in pending.items()]
    return frames


def scan_prediction_log(log_dir: str | os.PathLike) -> pl.LazyFrame | None:
    """Every logged record of every replica under ``log_dir`` (parquet parts plus journal
    records not yet compacted, the single-replica layout included), each record once,
    with the column ``replica``. None when there is no record. The one reader of the log
    (monitoring, consistency, experiments).

    Example:
        >>> scan_prediction_log(".mlops/predictions").collect().height  # doctest: +SKIP
    """
    frames = [f for replica, d in replica_dirs(log_dir) for f in _scan_directory(d, replica)]
    if not frames:
        return None
    every = frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
    return (every.unique(subset=[_ORIGIN, _POS], keep="first", maintain_order=True)
            .drop(_ORIGIN, _POS))


def count_log_files(log_dir: str | os.PathLike) -> int:
    """Parquet parts plus live journal segments of every replica (what a report calls
    "files")."""
    return sum(len(list(d.glob("*.parquet"))) + len(list((d / JOURNAL_DIR).glob(f"*{journal.SUFFIX}")))
               for _, d in replica_dirs(log_dir))
