"""Checks shared by the fault-injection tests (imported by name: conftest puts this folder on
sys.path)."""
from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import time


def one_line_error(stderr: str) -> str:
    """The run's stderr is exactly one ``error: ...`` line (plus report/notes lines on stdout
    elsewhere): no traceback. Returns that line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def finishes(fn, seconds: float = 20.0, memory: int = 1 << 30):
    """Run ``fn`` in a forked child limited to ``memory`` more bytes of address space;
    fail (instead of hanging the suite or exhausting the machine's memory, which is what
    reading ``/dev/zero`` or a FIFO without a check does) when it is not done in time.
    Returns ``(result, exception)`` as the child saw them (pickled back)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no return from here
        os.close(read_end)
        try:
            used = _address_space()
            resource.setrlimit(resource.RLIMIT_AS, (used + memory, used + memory))
            try:
                outcome = (fn(), None)
            except BaseException as exc:  # noqa: BLE001 - handed back to the test
                outcome = (None, exc)
            try:
                data = pickle.dumps(outcome)
            except Exception:  # noqa: BLE001
                data = pickle.dumps((None, RuntimeError(repr(outcome))))
            with os.fdopen(write_end, "wb") as fh:
                fh.write(data)
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + seconds
    with os.fdopen(read_end, "rb") as fh:
        while True:
            ready, _, _ = select.select([fh], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"still running after {seconds:g} s (hung, or reading without end)")
            chunk = os.read(fh.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    assert chunks, "the child died without an answer (killed for memory?)"
    return pickle.loads(b"".join(chunks))


def _address_space() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0
