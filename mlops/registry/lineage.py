"""What a registered version records: the ModelVersion dataclass and metadata checks.

Lineage = the data, feature plan, config and code a model came from, who trained it,
when, and which version it was derived from (``parent``).
"""
from __future__ import annotations

import difflib
import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError

# metadata key -> what it must be (used in error messages)
METADATA_KEYS: dict[str, str] = {
    "training_data_hash": "a string",
    "feature_plan_hash": "a string",
    "feature_plan_name": "a string",
    "feature_plan_version": "a string or an integer",
    "config": "a JSON-serialisable dict (the fully resolved config)",
    "hyperparameters": "a JSON-serialisable dict",
    "metrics": "a dict of metric name -> number",
    "fairness": "a JSON-serialisable dict (the fairness audit)",
    "tags": "a dict of tag -> JSON value, or a list of tag strings",
    "who": "a string (defaults to the actor, then getpass.getuser())",
    "code_version": "a string or null (defaults to the git commit of the working directory)",
    "description": "a string",
    "policy": "a JSON-serialisable dict (task, decision threshold and how it was chosen; "
              "see mlops.registry.policy)",
}


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered version and everything recorded about it."""

    name: str
    version: int
    created_at: str
    who: str
    code_version: str | None
    parent: int | None
    artifact_sha256: str
    artifact_path: Path
    artifact_size: int
    model_class: str
    reference_sha256: str | None = None
    reference_path: Path | None = None
    training_data_hash: str | None = None
    feature_plan_hash: str | None = None
    feature_plan_name: str | None = None
    feature_plan_version: str | int | None = None
    description: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    fairness: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)   # {} for versions from before policies

    @property
    def task(self) -> str:
        """``classification`` or ``regression``, as recorded at training."""
        return str((self.tags or {}).get("task") or "classification")

    @property
    def split_bounds(self) -> list[datetime]:
        """``[train start, train end, valid end, test end]`` of the time split recorded at
        training (empty for a version registered without one)."""
        bounds = ((self.tags or {}).get("split") or {}).get("bounds") or []
        return [datetime.fromisoformat(b) for b in bounds]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (paths as strings)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["artifact_path"] = str(self.artifact_path)
        out["reference_path"] = None if self.reference_path is None else str(self.reference_path)
        return out


def _json_default(value: Any) -> Any:
    # numpy scalars/arrays and paths show up in metric and config dicts all the time.
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def json_safe(value: Any, key: str) -> Any:
    """Round-trip ``value`` through JSON or raise ConfigError naming ``key``.

    numpy scalars/arrays become Python numbers/lists; NaN and inf become None
    (JSON has no such values and reports must stay valid JSON).
    """
    try:
        text = json.dumps(value, default=_json_default, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"must be JSON-serialisable; {exc}", key=key,
                          fix="convert it to plain dicts, lists, strings and numbers") from exc
    return _finite_or_none(json.loads(text))


def normalize_metadata(metadata: Any) -> dict[str, Any]:
    """Validate the ``metadata`` dict passed to ``register`` and return a JSON-safe copy.

    Unknown keys are refused (a typo would otherwise silently lose lineage).
    """
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ConfigError(f"must be a dict; got {type(metadata).__name__} instead", key="metadata")
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key not in METADATA_KEYS:
            close = difflib.get_close_matches(str(key), METADATA_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown metadata key; known keys: {sorted(METADATA_KEYS)}{hint}",
                              key=f"metadata.{key}")
        out[key] = _normalize_value(key, value, f"metadata.{key}")
    return out


def _normalize_value(key: str, value: Any, full: str) -> Any:
    """One known metadata value, checked against what ``METADATA_KEYS`` says it must be."""
    if key in ("config", "hyperparameters", "fairness", "metrics", "policy"):
        return _normalize_dict(key, value, full)
    if key == "tags":
        return _normalize_tags(value, full)
    if key == "feature_plan_version":
        ok = value is None or (not isinstance(value, bool) and isinstance(value, (str, int)))
    else:  # strings; code_version (and any string key left unset) may be null
        ok = value is None or isinstance(value, str)
    if not ok:
        raise ConfigError(f"must be {METADATA_KEYS[key]}; got {value!r} instead", key=full)
    return value


def _normalize_dict(key: str, value: Any, full: str) -> dict[str, Any]:
    """A dict value (None means empty); metrics must be finite numbers."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise ConfigError(f"must be {METADATA_KEYS[key]}; got {type(value).__name__} instead", key=full)
    if key == "metrics":
        value = {str(k): _json_default(v) if hasattr(v, "item") else v for k, v in value.items()}
        for name, number in value.items():
            if isinstance(number, bool) or not isinstance(number, (int, float)) \
                    or not math.isfinite(number):
                raise ConfigError(f"must be a finite number; got {number!r} instead",
                                  key=f"{full}.{name}",
                                  fix="drop the metric or fix how it is computed")
    return json_safe(value, full)


def _normalize_tags(value: Any, full: str) -> dict[str, Any]:
    """Tags as a dict; a list of strings means each tag set to true."""
    if value is None:
        value = {}
    elif isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        value = {t: True for t in value}
    elif not isinstance(value, dict):
        raise ConfigError(f"must be {METADATA_KEYS['tags']}; got {value!r} instead", key=full)
    return json_safe(value, full)


def git_commit(cwd: Path | None = None) -> str | None:
    """Commit of the git checkout containing ``cwd`` (default: the working directory), else None.

    Never raises: no git binary, not a repository, or a hung git all give None.
    """
    git = shutil.which("git")
    if git is None:
        return None
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
    try:
        result = subprocess.run(
            [git, "rev-parse", "--verify", "HEAD"],
            cwd=cwd or Path.cwd(),
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None
