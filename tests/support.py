"""Test support: compose the real config (Hydra compose API), run the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir

from mlops.config import register

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SMALL = ["data.n_users=400", "data.days=110"]

register()


def compose_cfg(overrides: list[str], tmp: Path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config",
                       overrides=[f"paths.output_dir={tmp / 'out'}", f"paths.home={tmp / 'home'}",
                                  *overrides])


def run_cli(args: list[str], *, cwd: Path, env: dict | None = None, timeout: int = 300):
    """``python run.py ...`` in a subprocess (for exit codes, stderr, multirun)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}  # None removes a variable
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def declare_approvers(run_action, *names: str) -> list[str]:
    """Create each approver's key pair in the test home (``action=keygen``) and return the
    overrides that declare them, for every action that approves or promotes."""
    for name in names:
        assert run_action("action=keygen", f"registry.approver={name}", out=f"keygen-{name}")[0] == 0
    return [f"+registry.approvers.{name}.public_key_file=keys/{name}.pub" for name in names]


def wait_until_healthy(base: str, proc, *, timeout: float = 60.0, output=None) -> None:
    """Poll ``base``/health until 200; fail early (with ``output()``) if ``proc`` exits."""
    import time

    import httpx
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, output() if output else "server exited"
        assert time.monotonic() < deadline, f"server did not start within {timeout:g} s"
        time.sleep(0.1)


@contextmanager
def redis_server(folder: Path | None = None):
    """A private ``redis-server`` on a free 127.0.0.1 port (working in ``folder`` when
    given), no persistence; yields its URL and stops it. Skips the test with one line when
    redis-server is not installed."""
    import shutil
    import socket
    import time

    import pytest
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server); "
                    "the Redis tests need a real server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    where = ["--dir", str(folder)] if folder is not None else []
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", *where], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
