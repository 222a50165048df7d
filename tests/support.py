"""Test support: compose the real config (Hydra compose API), run the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
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
