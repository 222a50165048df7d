"""Write-ahead journal of the prediction log: framed Arrow IPC records, append + fsync.

A journal *segment* (``<log_dir>/journal/<stem>.wal``) is a sequence of records::

    b"MLJ1" | crc32 (u32 LE) | length (u64 LE) | payload (an Arrow IPC stream of one frame)
    b"MLJR" | crc32 (u32 LE) | length (u64 LE) | payload (JSON rows, see below)

A segment opened with a ``schema`` starts with an empty Arrow record carrying it; ``MLJR``
records then hold rows as a JSON array of arrays in that schema's column order
(datetimes as epoch microseconds, a struct as an array of its fields): the single-record
fast path writes them with ``json.dumps`` instead of building a frame per request.

:class:`Segment` appends one record per group commit and calls ``fdatasync`` before the
commit counts, so a record the writer acknowledged survives ``kill -9`` (and power loss,
as far as the disk honours fsync). A crash can leave a torn last record; :func:`read_segment`
stops at the first incomplete or corrupt record, which by construction was never
acknowledged.

Ownership: the writing process holds an exclusive ``flock`` on its open segments, so
:func:`recover` (run at startup) compacts only segments whose writer is gone, even when
several servers share one log directory. Compaction writes
``<log_dir>/part-<stem>.parquet`` (temporary name, fsync, rename, directory fsync) and only
then deletes the segment; a reader that sees both uses the parquet part.

Example:
    >>> seg = Segment.create(tmp_dir / "journal", "0001-abc-000001")   # doctest: +SKIP
    >>> seg.append(frame); seg.sync()                                   # doctest: +SKIP
    >>> read_segment(seg.path).height                                   # doctest: +SKIP
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import struct
import zlib
from pathlib import Path

import polars as pl

MAGIC = b"MLJ1"
ROWS = b"MLJR"
_HEADER = struct.Struct("<4sIQ")
SUFFIX = ".wal"


def part_name(stem: str) -> str:
    """File name of the parquet part a segment compacts into."""
    return f"part-{stem}.parquet"


def _fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Segment:
    """One journal file open for appending, locked by this process."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd
        self.records = 0      # rows written (not journal records)
        self.bytes = 0

    @classmethod
    def create(cls, directory: str | os.PathLike, stem: str,
               schema: dict | None = None) -> "Segment":
        """Create ``<directory>/<stem>.wal`` (0600) and lock it; with ``schema``, write
        the schema record that JSON rows records need."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{stem}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        seg = cls(path, fd)
        if schema is not None:
            seg.append(pl.DataFrame(schema=schema))
        _fsync_dir(directory)  # the new name itself must survive a crash
        return seg

    @property
    def stem(self) -> str:
        return self.path.name[:-len(SUFFIX)]

    def append(self, frame: pl.DataFrame) -> None:
        """Write one record (not yet durable: call :meth:`sync`)."""
        buf = io.BytesIO()
        frame.write_ipc_stream(buf)
        self._write(MAGIC, buf.getvalue(), frame.height)

    def append_rows(self, payload: bytes, rows: int) -> None:
        """Write one JSON rows record (``payload``: a JSON array of row arrays)."""
        self._write(ROWS, payload, rows)

    def _write(self, magic: bytes, payload: bytes, rows: int) -> None:
        data = _HEADER.pack(magic, zlib.crc32(payload), len(payload)) + payload
        view = memoryview(data)
        while view:  # os.write may write less than asked
            n = os.write(self.fd, view)
            view = view[n:]
        self.records += rows
        self.bytes += len(data)

    def sync(self) -> None:
        """Make every appended record durable (one fdatasync: the group commit)."""
        os.fdatasync(self.fd)

    def close(self) -> None:
        """Close the file, which releases the lock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read_segment(path: str | os.PathLike) -> pl.DataFrame | None:
    """Every complete record of a segment as one frame (None when it has none).

    Stops at a torn or corrupt tail (a crash during the last write).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    frames, pos, schema = [], 0, None
    while pos + _HEADER.size <= len(data):
        magic, crc, length = _HEADER.unpack_from(data, pos)
        start, end = pos + _HEADER.size, pos + _HEADER.size + length
        if magic not in (MAGIC, ROWS) or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc or (magic == ROWS and schema is None):
            break
        if magic == MAGIC:
            frame = pl.read_ipc_stream(io.BytesIO(payload))
            schema = frame.schema
        else:
            frame = rows_frame(json.loads(payload), schema)
        if frame.height:
            frames.append(frame)
        pos = end
    if not frames:
        return None
    return pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]


def _column(values: list, dtype: pl.DataType) -> pl.Series:
    if isinstance(dtype, pl.Datetime):
        return pl.Series(values, dtype=pl.Int64).cast(dtype)
    if isinstance(dtype, pl.Struct):
        names = [f.name for f in dtype.fields]
        return pl.DataFrame(values, schema={f.name: f.dtype for f in dtype.fields},
                            orient="row").select(pl.struct(names)).to_series()
    return pl.Series(values, dtype=dtype, strict=False)


def rows_frame(rows: list[list], schema) -> pl.DataFrame:
    """A JSON rows record as a frame in ``schema`` (see the module docstring)."""
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    return pl.DataFrame([_column(list(v), t).alias(c)
                         for (c, t), v in zip(schema.items(), columns)])


def compact(path: str | os.PathLike, log_dir: str | os.PathLike) -> int:
    """Fold a segment into ``part-<stem>.parquet`` in ``log_dir``, then delete it.

    Returns the rows written (0 when the segment was empty or already compacted). The
    caller must own the segment (its writer, or :func:`recover` holding the lock).
    """
    path, log_dir = Path(path), Path(log_dir)
    stem = path.name[:-len(SUFFIX)]
    final = log_dir / part_name(stem)
    rows = 0
    if not final.exists():
        frame = read_segment(path)
        if frame is not None and frame.height:
            tmp = log_dir / f".{final.name}.tmp"
            frame.write_parquet(tmp)
            os.chmod(tmp, 0o600)  # files under paths.home are private
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            _fsync_dir(log_dir)
            rows = frame.height
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    return rows


def recover(journal_dir: str | os.PathLike, log_dir: str | os.PathLike) -> tuple[int, int]:
    """Compact every segment no live process holds (left by a crash).

    Returns (segments, rows) recovered. Segments locked by a running writer are skipped.
    """
    journal_dir = Path(journal_dir)
    if not journal_dir.is_dir():
        return 0, 0
    segments = rows = 0
    for path in sorted(journal_dir.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer owns it
            if not path.exists() or os.fstat(fd).st_ino != os.stat(path).st_ino:
                continue  # compacted by someone else meanwhile
            rows += compact(path, log_dir)
            segments += 1
        finally:
            os.close(fd)
    return segments, rows


def journal_frames(journal_dir: str | os.PathLike, log_dir: str | os.PathLike
                   ) -> dict[str, pl.DataFrame]:
    """``{stem: records}`` of every segment not yet compacted (for readers of the log).

    Segments are read before the caller lists the parquet parts, and the caller drops
    ``part-<stem>.parquet`` for every stem returned here: a segment compacted while we
    read is then counted once (from the journal), and one deleted before we read it
    has its part by then (the compactor renames the part before deleting the segment).
    """
    journal_dir, log_dir = Path(journal_dir), Path(log_dir)
    if not journal_dir.is_dir():
        return {}
    out = {}
    for p in sorted(journal_dir.glob(f"*{SUFFIX}")):
        stem = p.name[:-len(SUFFIX)]
        if (log_dir / part_name(stem)).exists():
            continue
        frame = read_segment(p)
        if frame is not None and frame.height:
            out[stem] = frame
    return out
