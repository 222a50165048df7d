"""The lock CI installs from (.ci/constraints.txt) covers pyproject.toml and satisfies it.

A dependency added to pyproject.toml without `bash .ci/lock` would install unpinned in
CI (and a range narrowed past the lock would make the install fail); both are caught here.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("test", "scale", "optuna", "postgres", "docs")   # what .ci/run installs


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, marker)] from the lock (a universal lock may fork by Python)."""
    pins: dict[str, list[tuple[str, str]]] = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;]+)\s*(?:;\s*(.*))?$", line)
        if m:
            pins.setdefault(_norm(m.group(1)), []).append((m.group(2), m.group(3) or ""))
    return pins


def _for_python_311(marker: str) -> bool:
    return not marker or Marker(marker).evaluate({"python_full_version": "3.11.7", "python_version": "3.11",
                                                  "sys_platform": "linux", "platform_system": "Linux",
                                                  "platform_machine": "x86_64", "implementation_name": "cpython",
                                                  "platform_python_implementation": "CPython", "os_name": "posix"})


def test_every_declared_dependency_is_locked_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in EXTRAS:
        declared += project["optional-dependencies"][extra]
    pins = _locked()
    problems = []
    for text in declared:
        req = Requirement(text)
        versions = [v for v, marker in pins.get(_norm(req.name), []) if _for_python_311(marker)]
        if len(versions) != 1:
            problems.append(f"{req.name}: {len(versions)} pins for Python 3.11 in the lock")
        elif not req.specifier.contains(versions[0], prereleases=True):
            problems.append(f"{req.name}: locked {versions[0]} is outside {req.specifier}")
    assert not problems, "run `bash .ci/lock`: " + "; ".join(problems)


def test_ci_installs_from_the_lock():
    run = (ROOT / ".ci" / "run").read_text()
    assert "-c .ci/constraints.txt" in run
