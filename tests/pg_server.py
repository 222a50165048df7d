"""A private PostgreSQL server for tests and benchmarks (Debian's ``postgresql`` package).

``initdb`` and ``pg_ctl`` into a fresh temporary directory, as an unprivileged user
(``nobody`` when we run as root: PostgreSQL refuses to run as root), listening on a free
127.0.0.1 port only, with a superuser ``mlops`` whose password logs in over TCP
(scram-sha-256). A watchdog process stops the server and removes its directory when
the process that started it exits, however it exits.

    >>> server = PostgresServer.start()          # raises Unavailable(reason) if it cannot
    >>> url = server.create_database("t1")       # postgresql://mlops@127.0.0.1:<port>/t1
    >>> server.stop()
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "mlops"
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, base, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while True:
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    if not os.path.isdir(base):
        sys.exit(0)
    time.sleep(1)
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
shutil.rmtree(base, ignore_errors=True)
"""


class Unavailable(RuntimeError):
    """PostgreSQL cannot be started here (the reason is the message)."""


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> tuple[list[str], str | None]:
    """Command prefix that drops root to ``nobody``, and that user's name."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        raise Unavailable("running as root and there is no 'nobody' user to run PostgreSQL as") from None
    if runuser is None:
        raise Unavailable("running as root without runuser/setpriv to run PostgreSQL as 'nobody'")
    if runuser.endswith("setpriv"):
        return [runuser, "--reuid=nobody", "--regid=nogroup", "--clear-groups"], "nobody"
    return [runuser, "-u", "nobody", "--"], "nobody"


class PostgresServer:
    """A running throwaway server; :meth:`stop` (or the watchdog) ends it."""

    def __init__(self, base: Path, port: int, password: str, prefix: list[str], pg_ctl: str):
        self.base, self.port, self.password = base, port, password
        self._prefix, self._pg_ctl = prefix, pg_ctl
        self._watchdog: subprocess.Popen | None = None

    @classmethod
    def start(cls, *, fsync: bool = False) -> PostgresServer:
        """Start a server (``fsync=False`` for tests: a test never survives the server
        crashing, only a client being killed; benchmarks pass True)."""
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise Unavailable("PostgreSQL is not installed (apt-get install -y postgresql)")
        prefix, user = _as_user()
        base = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        password = secrets.token_urlsafe(18)
        if user:
            shutil.chown(base, user=user)
        pwfile = base / "pw"
        pwfile.write_text(password + "\n")
        if user:
            shutil.chown(pwfile, user=user)
        server = cls(base, free_port(), password, prefix, pg_ctl)
        try:
            server._run([initdb, "-D", str(base / "data"), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8",
                         "--auth-host=scram-sha-256", "--auth-local=reject", "--no-sync", "--locale=C"])
            pwfile.unlink()
            options = (f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={base} "
                       f"-c fsync={'on' if fsync else 'off'} -c max_connections=60")
            server._run([pg_ctl, "-D", str(base / "data"), "-o", options, "-l", str(base / "log"), "-w",
                         "-t", "60", "start"])
        except Unavailable:
            shutil.rmtree(base, ignore_errors=True)
            raise
        server._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(base), *prefix, pg_ctl, "-D",
             str(base / "data"), "-m", "immediate", "stop"], start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return server

    def _run(self, command: list[str]) -> None:
        done = subprocess.run([*self._prefix, *command], capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode != 0:
            log = self.base / "log"
            tail = log.read_text()[-500:] if log.exists() else ""
            raise Unavailable(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout)[-500:]} {tail}")

    def url(self, database: str = "postgres") -> str:
        """The URL a registry uses (no password: it goes by PGPASSWORD or a password file)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        """An autocommit psycopg connection as the superuser."""
        import psycopg
        return psycopg.connect(self.url(database), password=self.password, autocommit=True)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self._run([self._pg_ctl, "-D", str(self.base / "data"), "-m", "fast", "-w", "stop"])
        except (Unavailable, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.base, ignore_errors=True)
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()

