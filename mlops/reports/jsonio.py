"""JSON output for reports: JSON-safe conversion and atomic file writes.

Reports are read by people *and* machines (CI gates, dashboards, the sweep
callback), so the JSON must always parse: NaN/inf become ``null``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from mlops.filesystem import atomic_path


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` into plain JSON types.

    NaN/inf become ``None``; numpy scalars/arrays become Python numbers/lists;
    datetimes/dates become ISO strings; ``Path`` becomes ``str``; dataclasses and
    enums become their fields/values; sets become sorted lists.
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, Integral):
        return int(obj)
    if isinstance(obj, Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    return _other_to_jsonable(obj)


def _other_to_jsonable(obj: Any) -> Any:
    """The rarer types: times, paths, enums, dataclasses, numpy values, bytes."""
    if isinstance(obj, (dt.datetime, dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "dtype") and hasattr(obj, "tolist"):  # numpy arrays/scalars, no import needed
        return to_jsonable(obj.tolist())
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(
        f"write_json cannot serialise an object of type {type(obj).__name__!r}; "
        "convert it to dict/list/str/number first"
    )


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a unique temp file + ``os.replace``.

    Readers never see a half-written file, and concurrent writers (parallel sweep
    jobs) cannot interleave: the last complete write wins. A full disk is DiskFullError
    naming ``path``, with no temp file left.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj: Any, path: Path) -> Path:
    """Write ``obj`` as pretty JSON, JSON-safe (see :func:`to_jsonable`) and atomically.

    >>> write_json({"psi": float("nan")}, Path("/tmp/x.json")).read_text()  # doctest: +SKIP
    '{\\n  "psi": null\\n}\\n'
    """
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return write_text_atomic(Path(path), text + "\n")


