"""Registry health: check every recorded file against its sha256, clean up orphans."""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlops.errors import RegistryError
from mlops.registry import artifacts
from mlops.registry.lineage import ModelVersion


def check_versions(versions: Iterable[ModelVersion], database: str) -> dict[str, Any]:
    """Verify each version's artefact (and reference file) exists and matches its recorded sha256.

    ``database`` is the result of ``PRAGMA quick_check`` ("ok" when healthy).
    """
    problems, count = [], 0
    for mv in versions:
        count += 1
        files = [("artifact", mv.artifact_path, mv.artifact_sha256)]
        if mv.reference_path is not None and mv.reference_sha256 is not None:
            files.append(("reference", mv.reference_path, mv.reference_sha256))
        for kind, path, sha in files:
            try:
                artifacts.read_verified(path, expected_sha256=sha, what=f"model '{mv.name}' version {mv.version}")
            except RegistryError as exc:
                problems.append({"model": mv.name, "version": mv.version, "kind": kind, "file": str(path),
                                 "problem": str(exc)})
    return {"ok": database == "ok" and not problems, "versions_checked": count, "database": database,
            "problems": problems}


def remove_orphans(directory: Path, used: Iterable[Path], *, min_age_seconds: float, dry_run: bool) -> list[Path]:
    """Delete files under ``directory`` not in ``used`` and older than ``min_age_seconds``."""
    if not directory.exists():
        return []
    keep = {Path(p) for p in used}
    now, removed = time.time(), []
    for path in sorted(directory.rglob("*")):
        try:
            old_enough = now - path.stat().st_mtime >= min_age_seconds
        except FileNotFoundError:  # removed concurrently
            continue
        if path.is_file() and path not in keep and old_enough:
            if not dry_run:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
