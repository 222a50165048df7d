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
as far as the disk honours fsync). Every record carries its own length and crc32, so a
damaged record costs only itself: :func:`scan_segment` skips it to the next intact
record (found by its magic, confirmed by its checksum) and keeps every intact record
before and after it. A crash can also leave a torn last record (never acknowledged).
The schema record is written twice, so rows records stay readable when one copy is hit.

Ownership: the writing process holds an exclusive ``flock`` on its open segments, so
:func:`~mlops.serving.prediction_log.compaction.recover` (run at startup) compacts only
segments whose writer is gone, even when several servers share one log directory.
Compaction (:mod:`mlops.serving.prediction_log.compaction`) writes ``<log_dir>/part-<stem>.parquet``,
copies damaged bytes to ``<log_dir>/quarantine/`` and only then deletes the segment; a
reader that sees both uses the parquet part.

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
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

MAGIC = b"MLJ1"
ROWS = b"MLJR"
_HEADER = struct.Struct("<4sIQ")
SUFFIX = ".wal"


def part_name(stem: str) -> str:
    """File name of the parquet part a segment compacts into."""
    return f"part-{stem}.parquet"


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a directory's entries (a new or renamed file) durable."""
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
        self.valid_bytes: int | None = None  # set when a failed commit was cut off

    @classmethod
    def create(cls, directory: str | os.PathLike, stem: str,
               schema: dict | None = None) -> "Segment":
        """Create ``<directory>/<stem>.wal`` (0600) and lock it; with ``schema``, write
        the schema record that JSON rows records need."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{stem}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        seg = cls(path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if schema is not None:  # twice: rows records stay readable when one copy is damaged
                seg.append(pl.DataFrame(schema=schema))
                seg.append(pl.DataFrame(schema=schema))
            fsync_dir(directory)  # the new name itself must survive a crash
        except BaseException:  # a full disk: no descriptor and no empty segment left behind
            seg.close()
            path.unlink(missing_ok=True)
            raise
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

    def discard_after(self, size: int) -> None:
        """Cut the file back to ``size`` bytes: records whose commit failed never become
        log rows (their requests were answered 503). Compaction reads no further than
        ``size`` even if the cut itself fails."""
        self.valid_bytes = self.bytes = size
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            pass

    def close(self) -> None:
        """Close the file, which releases the lock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class SegmentScan:
    """What a segment holds: the frames of every intact record, and where it is damaged.

    ``damaged``: ``(offset, length)`` of byte ranges no intact record covers (a flipped
    byte, a zeroed block); ``torn``: bytes of an incomplete last record (a crash while it
    was written: never acknowledged); ``undecodable``: intact records (checksum right)
    that could not be turned into rows (their schema record is damaged): kept, never dropped.
    """

    frames: list[pl.DataFrame] = field(default_factory=list)
    damaged: list[tuple[int, int]] = field(default_factory=list)
    torn: int = 0
    undecodable: int = 0

    @property
    def frame(self) -> pl.DataFrame | None:
        """Every decoded record as one frame (None when there is none)."""
        frames = [f for f in self.frames if f.height]
        if not frames:
            return None
        return pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]

    @property
    def damaged_bytes(self) -> int:
        return sum(n for _, n in self.damaged)


def _record_at(data: bytes, pos: int) -> tuple[bytes, bytes, int] | None:
    """``(magic, payload, end)`` of an intact record starting at ``pos``, else None."""
    if pos + _HEADER.size > len(data):
        return None
    magic, crc, length = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if magic not in (MAGIC, ROWS) or end > len(data):
        return None
    payload = data[pos + _HEADER.size:end]
    return (magic, payload, end) if zlib.crc32(payload) == crc else None


def _next_record(data: bytes, pos: int) -> int | None:
    """Where the next intact record starts at or after ``pos`` (None: no more). A record
    is found by its magic and confirmed by its checksum, so a damaged length or header
    costs only the bytes up to the next record."""
    while True:
        found = [i for i in (data.find(MAGIC, pos), data.find(ROWS, pos)) if i >= 0]
        if not found:
            return None
        start = min(found)
        if _record_at(data, start) is not None:
            return start
        pos = start + 1


def _torn(data: bytes, pos: int) -> bool:
    """The bytes from ``pos`` are the start of a record the writer did not finish."""
    if len(data) - pos < _HEADER.size:
        return True
    magic, _, length = _HEADER.unpack_from(data, pos)
    return magic in (MAGIC, ROWS) and pos + _HEADER.size + length > len(data)


def _decode(scan: SegmentScan, magic: bytes, payload: bytes, schema) -> object:
    """Append the record's rows to ``scan``; returns the schema in force after it."""
    try:
        if magic == MAGIC:
            frame = pl.read_ipc_stream(io.BytesIO(payload))
            scan.frames.append(frame)
            return schema if frame.height else frame.schema  # a schema record sets it
        if schema is None:
            raise ValueError("no schema record before a rows record")
        scan.frames.append(rows_frame(json.loads(payload), schema))
    except Exception:  # noqa: BLE001 - intact bytes we cannot read: kept whole by compact()
        scan.undecodable += 1
    return schema


def scan_segment(data: bytes, schema=None) -> SegmentScan:
    """Read every intact record of a segment's bytes, skipping damaged ones.

    A record that fails its checksum (or whose header is unreadable) is skipped up to the
    next intact record, so one flipped byte loses one record, not the rest of the
    segment. ``schema`` (a dict of column types) reads rows records when the segment's
    own schema records are damaged."""
    scan, pos, current = SegmentScan(), 0, None
    while pos < len(data):
        record = _record_at(data, pos)
        if record is None:
            after = _next_record(data, pos + 1)
            if after is None:
                if _torn(data, pos):
                    scan.torn = len(data) - pos
                else:
                    scan.damaged.append((pos, len(data) - pos))
                break
            scan.damaged.append((pos, after - pos))
            pos = after
            continue
        magic, payload, pos = record
        current = _decode(scan, magic, payload, current if current is not None else schema)
    return scan


def read_segment(path: str | os.PathLike, schema=None) -> pl.DataFrame | None:
    """Every intact record of a segment as one frame (None when it has none); damaged
    records are skipped (see :func:`scan_segment`)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    return scan_segment(data, schema).frame


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


def journal_frames(journal_dir: str | os.PathLike, log_dir: str | os.PathLike, schema=None
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
        frame = read_segment(p, schema)
        if frame is not None and frame.height:
            out[stem] = frame
    return out
