"""Values as the registry index stores them: UTC timestamps and JSON text columns.

The index itself (SQLite or PostgreSQL) is :mod:`mlops.registry.database`; its schema
and migrations are :mod:`mlops.registry.migrations`.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def utc_now() -> str:
    """Current time as UTC ISO 8601 with microseconds, e.g. ``2025-01-31T12:00:00.000001+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def dumps(value: Any) -> str:
    """JSON text for a metadata column (keys sorted so equal dicts give equal text)."""
    return json.dumps(value, sort_keys=True, allow_nan=True)


def loads(text: str | None) -> Any:
    """Inverse of :func:`dumps`; ``None`` stays ``None``."""
    return None if text is None else json.loads(text)
