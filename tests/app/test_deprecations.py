"""pytest turns a DeprecationWarning issued from our own code into an error (pyproject's
filterwarnings), and leaves a library's warnings about its own internals alone."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = '''
import types
import warnings


def _module(name):
    mod = types.ModuleType(name)
    exec("import warnings\\ndef old():\\n    warnings.warn('old API', DeprecationWarning)\\n", mod.__dict__)
    return mod


def test_ours():
    _module("mlops.probe").old()


def test_a_library():
    _module("somelib.internals").old()
'''


def test_a_deprecation_from_mlops_fails_and_one_from_a_library_does_not(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(probe)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert "1 failed, 1 passed" in p.stdout, p.stdout[-2000:]
    assert "test_ours" in p.stdout.split("short test summary")[-1]
