"""Compaction of the prediction log's journal: segments into parquet parts, damage into
quarantine, and the recovery of segments a crashed server left.

:func:`compact` reads a segment with :func:`~mlops.serving.prediction_log.journal.scan_segment` (every
intact record, damaged ones skipped), writes ``part-<stem>.parquet`` (temporary name,
fsync, rename, directory fsync), copies the damaged and torn bytes to
``quarantine/<stem>.bad`` with an index of where they were (``<stem>.json``), and only
then deletes the segment. A segment holding an intact record that cannot be read (its
schema records are both damaged and no schema was given) is never deleted: it moves into
the quarantine whole. :func:`recover` does this for every segment no live writer holds
and returns the totals, which the server reports (``/ready``, ``/metrics``, a log line).
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from mlops.serving.prediction_log.journal import SUFFIX, SegmentScan, fsync_dir, part_name, scan_segment

QUARANTINE_DIR = "quarantine"


@dataclass
class Compaction:
    """What compacting one or more segments did (:func:`compact`, :func:`recover`)."""

    segments: int = 0
    rows: int = 0                 # records kept (in parquet parts)
    damaged_regions: int = 0      # byte ranges no intact record covered: moved to quarantine
    damaged_bytes: int = 0
    torn_bytes: int = 0           # incomplete last records (never acknowledged): quarantined too
    kept_whole: int = 0           # segments with intact but unreadable records: moved, not deleted
    quarantined: list[str] = field(default_factory=list)

    def add(self, other: "Compaction") -> "Compaction":
        for name in ("segments", "rows", "damaged_regions", "damaged_bytes", "torn_bytes", "kept_whole"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.quarantined += other.quarantined
        return self

    @property
    def lossy(self) -> bool:
        """Something other than intact records was found."""
        return bool(self.damaged_regions or self.torn_bytes or self.kept_whole)

    def as_dict(self) -> dict:
        return {"segments": self.segments, "rows_kept": self.rows, "damaged_regions": self.damaged_regions,
                "damaged_bytes": self.damaged_bytes, "torn_tail_bytes": self.torn_bytes,
                "segments_kept_whole": self.kept_whole, "quarantined": list(self.quarantined)}


def _write_synced(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _quarantine(data: bytes, scan: SegmentScan, stem: str, folder: Path) -> list[str]:
    """Copy the damaged (and torn) bytes to ``folder/<stem>.bad`` with an index of where
    they were (``<stem>.json``), durably, before the segment may go."""
    spans = [{"offset": o, "length": n, "kind": "damaged"} for o, n in scan.damaged]
    if scan.torn:
        spans.append({"offset": len(data) - scan.torn, "length": scan.torn, "kind": "torn_tail"})
    if not spans:
        return []
    folder.mkdir(mode=0o700, exist_ok=True)
    bad, index = folder / f"{stem}.bad", folder / f"{stem}.json"
    _write_synced(bad, b"".join(data[s["offset"]:s["offset"] + s["length"]] for s in spans))
    _write_synced(index, json.dumps({"segment": f"{stem}{SUFFIX}", "size": len(data), "spans": spans},
                                    indent=1).encode())
    fsync_dir(folder)
    return [str(bad)]


def _write_part(frame: pl.DataFrame, final: Path) -> None:
    tmp = final.with_name(f".{final.name}.tmp")
    frame.write_parquet(tmp)
    os.chmod(tmp, 0o600)  # files under paths.home are private
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def compact(path: str | os.PathLike, log_dir: str | os.PathLike, schema=None,
            valid_bytes: int | None = None) -> Compaction:
    """Fold a segment into ``part-<stem>.parquet`` in ``log_dir``, then delete it.

    Damaged records are skipped (every intact record before and after them is kept) and
    their bytes copied to ``log_dir/quarantine/<stem>.bad`` first. A segment holding an
    intact record that cannot be read is never deleted: it moves to the quarantine whole.
    The caller must own the segment (its writer, or :func:`recover` holding the lock);
    ``valid_bytes``: the writer's own bound (records after it failed their commit).
    """
    path, log_dir = Path(path), Path(log_dir)
    stem = path.name[:-len(SUFFIX)]
    final = log_dir / part_name(stem)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Compaction()
    data = data if valid_bytes is None else data[:valid_bytes]
    scan = scan_segment(data, schema)
    done = Compaction(segments=1, damaged_regions=len(scan.damaged), damaged_bytes=scan.damaged_bytes,
                      torn_bytes=scan.torn)
    frame = scan.frame
    if not final.exists() and frame is not None:
        _write_part(frame, final)
        done.rows = frame.height
    folder = log_dir / QUARANTINE_DIR
    done.quarantined = _quarantine(data, scan, stem, folder)
    if scan.undecodable:  # intact records nobody could read: keep every byte
        folder.mkdir(mode=0o700, exist_ok=True)
        os.replace(path, folder / path.name)
        fsync_dir(folder)
        done.kept_whole, done.quarantined = 1, [*done.quarantined, str(folder / path.name)]
        return done
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    return done


def recover(journal_dir: str | os.PathLike, log_dir: str | os.PathLike, schema=None) -> Compaction:
    """Compact every segment no live process holds (left by a crash); returns the totals.
    Segments locked by a running writer are skipped."""
    journal_dir = Path(journal_dir)
    total = Compaction()
    if not journal_dir.is_dir():
        return total
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
            total.add(compact(path, log_dir, schema))
        finally:
            os.close(fd)
    return total
