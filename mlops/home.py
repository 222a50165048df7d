"""Private files under ``paths.home``: directories 0700, files 0600.

The home holds model artefacts, configs, entity ids and features (prediction log,
online store), alerts and approvers' private keys: nothing another local user should
read. Two helpers cover every point of creation:

    >>> d = private_dir(tmp_path / "registry")          # mkdir -p: what it creates is 0700
    >>> f = private_file(d / "registry.db")             # created empty 0600 if missing
    >>> oct(f.stat().st_mode & 0o777)
    '0o600'

Neither changes the mode of a file or directory that exists already: the product never
chmods what it did not create. :func:`private_home` refuses a home others control.

SQLite creates its ``-wal`` and ``-shm`` files with the mode of the database file,
so pre-creating the database 0600 makes all three private. ``private_umask()`` is for
code that creates files through a library we cannot pass a mode to (parquet writers).
"""
from __future__ import annotations

import errno
import os
import pwd
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlops.errors import ConfigError

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    """Create ``path`` and its missing parents, each 0700; return ``path``.

    A directory that exists already keeps its mode: the product never changes the mode
    of what it did not create (``paths.home=/tmp`` must not make /tmp 0700).
    """
    path = Path(path)
    missing = []
    for p in (path, *path.parents):
        if os.path.lexists(p):
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            os.mkdir(p, DIR_MODE)
        except FileExistsError:  # made by someone else meanwhile: theirs, not ours to chmod
            continue
        # mkdir's mode is filtered by the umask: chmod says what we mean, on what we made
        os.chmod(p, DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    return path


def private_file(path: Path | str) -> Path:
    """Create ``path`` empty and 0600 if it does not exist; an existing file (or symlink)
    is left as it is (its mode is not ours to change)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return path
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have filtered the mode
    finally:
        os.close(fd)
    return path


def private_home(path: Path | str, *, key: str = "paths.home") -> Path:
    """The home directory, resolved; created 0700 when missing.

    Refused (ConfigError naming ``key``) when it is a symbolic link, not a directory,
    owned by another user, or writable by every user without the sticky bit: whoever
    controls it could swap the registry, keys or artefacts under us. An existing home
    keeps its mode.
    """
    path = Path(path).expanduser()
    fix = "point paths.home (or MLOPS_HOME) at a directory of your own, e.g. ~/.mlops"
    if path.is_symlink():
        raise ConfigError(f"{path} is a symbolic link (to {os.readlink(path)}); a home is used "
                          "where it is, never through a link", key=key, fix=fix)
    if not os.path.lexists(path):
        return private_dir(path).resolve()
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} exists and is not a directory", key=key, fix=fix)
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{path} is owned by {_account(info.st_uid)}, not by this user "
                          f"({_account(os.geteuid())})", key=key, fix=fix)
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise ConfigError(f"{path} is writable by every user (mode {oct(stat.S_IMODE(info.st_mode))}, "
                          "no sticky bit)", key=key, fix=f"chmod o-w {path}, or {fix[0].lower()}{fix[1:]}")
    return path.resolve()


def _account(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


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
