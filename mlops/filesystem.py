"""Files the product writes and reads, safely: whole or not at all, a full disk named,
regular files only where a file is expected.

- :func:`atomic_path` gives a writer a temp name next to the target and renames it into
  place when the block succeeds; on any failure the temp file is removed, so a reader (or
  the next run) never finds half a report, table or artefact. A full disk or quota inside
  the block becomes :class:`~mlops.errors.DiskFullError` naming the target.
- :func:`naming_full_disk` does the conversion alone (for writes that are transactional
  already, such as SQLite's).
- :func:`read_regular` reads a file only when it is a regular file (not a symlink, FIFO or
  device) of the expected size, so a path swapped for ``/dev/zero`` or a pipe is refused
  before a byte is read, instead of filling memory or hanging.
- :func:`sqlite_file_problem` says why an existing path cannot be a SQLite database.

    >>> with atomic_path(tmp_path / "features.parquet") as tmp:
    ...     frame.write_parquet(tmp)       # a failure leaves no features.parquet behind
"""
from __future__ import annotations

import errno
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlops.errors import DiskFullError

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# how libraries that do not raise OSError spell it (polars/arrow in Rust, SQLite)
_FULL_TEXTS = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122",
               "database or disk is full")
_SQLITE_FULL = 13
SQLITE_HEADER = b"SQLite format 3\x00"


def disk_full_detail(exc: BaseException) -> str | None:
    """What a full disk said, if ``exc`` (or an exception it was raised from) is one; else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return os.strerror(exc.errno).lower()
        if isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL:
            return "database or disk is full"
        text = str(exc).lower()
        found = next((t for t in _FULL_TEXTS if t in text), None)
        if found is not None:
            return "disk quota exceeded" if found in ("disk quota exceeded", "os error 122") else \
                "no space left on device"
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def naming_full_disk(path: Path | str) -> Iterator[None]:
    """Re-raise a full disk inside the block as DiskFullError naming ``path``."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        detail = disk_full_detail(exc)
        if detail is None:
            raise
        raise DiskFullError(path, detail) from exc


def temp_name(path: Path) -> Path:
    """A hidden, unique temp name next to ``path`` (same directory: the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path to write; rename it to ``path`` when the block succeeds.

    On any exception the temp file is removed and ``path`` is left as it was (absent or
    the previous complete file); a full disk is raised as DiskFullError naming ``path``.
    """
    path = Path(path)
    with naming_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path)
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def kind_of(mode: int) -> str:
    """``stat`` mode -> what a person calls it (``a FIFO (named pipe)``, ``a directory``...)."""
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a regular file")


class UnsafeFileError(ValueError):
    """A path that should be a regular file is something else, or has the wrong size."""


def read_regular(path: Path | str, *, expected_size: int | None = None) -> bytes:
    """The bytes of ``path`` if it is a regular file (a symlink is not followed) whose size
    is ``expected_size`` (when given); else UnsafeFileError saying what it is.

    The file is opened without following a symlink and without blocking on a FIFO; its
    type and size are checked on the open descriptor, before anything is read.
    FileNotFoundError and other OSErrors pass through.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink
            raise UnsafeFileError(f"{path} is a symbolic link, not a regular file") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{path} is {kind_of(info.st_mode)}, not a regular file")
        if expected_size is not None and info.st_size != expected_size:
            raise UnsafeFileError(f"{path} has {info.st_size} bytes but {expected_size} were recorded")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(info.st_size + 1)  # never more than the file said it holds, plus one
    finally:
        os.close(fd)
    if expected_size is not None and len(data) != expected_size:
        raise UnsafeFileError(f"{path} changed size while being read")
    return data


def sqlite_file_problem(path: Path | str) -> str | None:
    """Why an existing ``path`` cannot be opened as a SQLite database (``"is a directory"``,
    ``"is not a SQLite database ..."``), or None: absent, empty, or a SQLite file. The
    header is read without blocking on a FIFO."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return f"is {kind_of(info.st_mode)}, not a database file"
    if info.st_size == 0:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.read(fd, len(SQLITE_HEADER))
    finally:
        os.close(fd)
    if head != SQLITE_HEADER:
        return f"is not a SQLite database (it starts with {head[:8]!r})"
    return None
