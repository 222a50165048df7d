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
(``part-<stem>.parquet``, same rows in the same order). So every segment is read from
one source only: a segment and its part both present (a compactor killed between the two
steps, a reader racing a compaction) or a replica directory copied in twice count once.
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


def _directory_sources(directory: Path) -> dict[str, pl.DataFrame | str]:
    """``{stem: journal records or a parquet part's path}`` of one replica. The journal
    is read before the parts are listed, and a part whose segment was read is left out:
    a segment compacted meanwhile is counted once (from the journal)."""
    pending: dict[str, pl.DataFrame | str] = dict(
        journal.journal_frames(directory / JOURNAL_DIR, directory))
    for p in sorted(directory.glob("*.parquet")):
        stem = p.name[len("part-"):-len(".parquet")] if p.name.startswith("part-") else p.name
        pending.setdefault(stem, str(p))
    return pending


def _rows(source: pl.DataFrame | str) -> int:
    return source.height if isinstance(source, pl.DataFrame) else \
        pl.scan_parquet(source).select(pl.len()).collect().item()


def _each_record_once(log_dir) -> dict[str, tuple[pl.DataFrame | str, str | None]]:
    """``{stem: (source, replica)}``: one source per journal segment. Two sources of one
    stem (a replica directory copied in twice, its journal in one copy and its part in
    the other) hold the same records, one a prefix of the other: the longer one is kept."""
    chosen: dict[str, tuple[pl.DataFrame | str, str | None]] = {}
    for replica, directory in replica_dirs(log_dir):
        for stem, source in _directory_sources(directory).items():
            if stem not in chosen or _rows(source) > _rows(chosen[stem][0]):
                chosen[stem] = (source, replica)
    return chosen


def scan_prediction_log(log_dir: str | os.PathLike) -> pl.LazyFrame | None:
    """Every logged record of every replica under ``log_dir`` (parquet parts plus journal
    records not yet compacted, the single-replica layout included), each record once,
    with the column ``replica``. None when there is no record. The one reader of the log
    (monitoring, consistency, experiments).

    Example:
        >>> scan_prediction_log(".mlops/predictions").collect().height  # doctest: +SKIP
    """
    frames, parts = [], {}
    for source, replica in _each_record_once(log_dir).values():
        tag = pl.lit(replica, dtype=pl.String).alias(REPLICA_COLUMN)
        if isinstance(source, pl.DataFrame):
            frames.append(source.lazy().with_columns(tag))
        else:  # parts written by an older version of the log (an integer prediction
            # column) are scanned on their own and relaxed into today's types
            key = (replica, str(pl.read_parquet_schema(source)))
            parts.setdefault(key, []).append(source)
    frames += [pl.scan_parquet(files).with_columns(pl.lit(replica, dtype=pl.String)
                                                   .alias(REPLICA_COLUMN))
               for (replica, _), files in parts.items()]
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def count_log_files(log_dir: str | os.PathLike) -> int:
    """Parquet parts plus live journal segments of every replica (what a report calls
    "files")."""
    return sum(len(list(d.glob("*.parquet"))) + len(list((d / JOURNAL_DIR).glob(f"*{journal.SUFFIX}")))
               for _, d in replica_dirs(log_dir))
