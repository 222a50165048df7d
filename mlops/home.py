"""Private files under ``paths.home``: directories 0700, files 0600.

The home holds model artefacts, configs, entity ids and features (prediction log,
online store), alerts and approvers' private keys: nothing another local user should
read. Two helpers cover every point of creation:

    >>> d = private_dir(tmp_path / "registry")          # mkdir -p, then chmod 0700
    >>> f = private_file(d / "registry.db")             # create empty if missing, chmod 0600
    >>> oct(f.stat().st_mode & 0o777)
    '0o600'

SQLite creates its ``-wal`` and ``-shm`` files with the mode of the database file,
so pre-creating the database 0600 makes all three private. ``private_umask()`` is for
code that creates files through a library we cannot pass a mode to (parquet writers).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    """Create ``path`` and missing parents (those it creates 0700 too) and make the leaf 0700."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for created in missing[1:]:
        try:
            os.chmod(created, DIR_MODE)
        except OSError:  # made by someone else meanwhile
            pass
    # mkdir's mode is filtered by the umask and ignored for existing dirs: chmod says what we mean.
    if (path.stat().st_mode & 0o777) != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path | str) -> Path:
    """Create ``path`` empty if it does not exist (0600 from the start) and make it 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(fd)
    if (path.stat().st_mode & 0o777) != FILE_MODE:
        os.chmod(path, FILE_MODE)
    return path


def open_private(path: Path | str, mode: str = "a"):
    """``open(path, mode)`` for text, creating the file 0600 when it is new."""
    private_file(path)
    return open(path, mode)


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created inside the block get no group/other permissions.

    The umask is process-wide, so keep the block short (one file write).
    """
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
