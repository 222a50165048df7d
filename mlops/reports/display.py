"""How values look to people: the Jinja filters (``fmt``, ``pct``, ``ts``, ``json``,
``duration``, ``status``) and the small models behind the ``table`` and ``cards`` macros.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from markupsafe import Markup

from mlops.reports.jsonio import to_jsonable

DASH = "—"

_STATUS_ALIASES = {
    "ok": "ok", "pass": "ok", "passed": "ok", "success": "ok", "completed": "ok", "good": "ok",
    "warn": "warn", "warning": "warn", "degraded": "warn", "missing": "warn", "skipped": "warn",
    "fail": "fail", "failed": "fail", "error": "fail", "critical": "fail", "refused": "fail",
    "drift": "fail", "drifted": "fail",
}


def normalize_status(status: Any) -> str:
    """Map a status word onto the report vocabulary ``ok`` / ``warn`` / ``fail`` (else ``info``).

    >>> normalize_status("FAILED"), normalize_status("warning"), normalize_status(None)
    ('fail', 'warn', 'info')
    """
    return _STATUS_ALIASES.get(str(status).strip().lower(), "info") if status is not None else "info"


def fmt(value: Any, digits: int = 4) -> str:
    """Format a number for people: ints with thousands separators, floats to
    ``digits`` significant digits, ``None``/NaN as an em dash; other values as ``str``.

    >>> fmt(1234567), fmt(0.123456), fmt(2.0), fmt(None), fmt(123456.7)
    ('1,234,567', '0.1235', '2', '—', '123,500')
    """
    if value is None:
        return DASH
    if isinstance(value, Markup):
        return value
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if isinstance(value, Real) or (hasattr(value, "dtype") and hasattr(value, "item")):
        try:
            x = float(value)
        except (TypeError, ValueError):
            return str(value)
        if math.isnan(x):
            return DASH
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x == 0:
            return "0"
        text = f"{x:.{digits}g}"
        rounded = float(text)
        # large values: '123,500' reads better than '1.235e+05'; tiny ones keep the exponent
        if 1000 <= abs(rounded) < 1e15:
            return f"{int(rounded):,}"
        return text
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    """Format a share (0.1234) as a percentage ('12.3%'); ``None``/NaN as an em dash."""
    if value is None:
        return DASH
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return DASH
    return f"{x * 100:.{digits}f}%"


def _to_utc(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, dt.date):
        stamp = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = dt.datetime.fromtimestamp(float(value), tz=dt.timezone.utc)
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    # naive timestamps are taken as UTC: the framework stores UTC everywhere
    if stamp.tzinfo is None:
        return stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.astimezone(dt.timezone.utc)


def ts(value: Any) -> str:
    """Format a datetime / ISO string / epoch seconds as ``'2024-03-01 12:00 UTC'``."""
    if value is None:
        return DASH
    stamp = _to_utc(value)
    return stamp.strftime("%Y-%m-%d %H:%M UTC") if stamp else str(value)


def to_json_text(value: Any) -> str:
    """Pretty JSON for a ``<pre>`` block (the result is still autoescaped)."""
    return json.dumps(to_jsonable(value), indent=2, ensure_ascii=False, default=str)


def duration(seconds: Any) -> str:
    """Format seconds as '0.42 s', '12.3 s', '4 min 05 s' or '2 h 03 min'."""
    if seconds is None:
        return DASH
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if not math.isfinite(s):
        return DASH
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


# ---------------------------------------------------------------- table model (used by macros)

def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def table_columns(rows: Any, columns: Any, numeric_cols: Any = None) -> list[dict]:
    """Normalise the ``columns`` argument of the ``table`` macro.

    A column is a key (``"psi"``), a ``(key, label)`` pair or a dict with ``key`` and
    optional ``label`` / ``format`` (fmt | pct | ts | duration | badge | code | text).
    ``numeric_cols=None`` auto-detects columns whose values are all numbers.
    """
    rows = list(rows or [])
    out = []
    for pos, col in enumerate(columns or []):
        if isinstance(col, Mapping):
            spec = {"key": col["key"], "label": col.get("label", col["key"]),
                    "format": col.get("format"), "pos": pos}
        elif isinstance(col, (list, tuple)):
            spec = {"key": col[0], "label": col[1], "format": None, "pos": pos}
        else:
            spec = {"key": col, "label": col, "format": None, "pos": pos}
        values = [cell(r, spec) for r in rows]
        present = [v for v in values if v is not None]
        if numeric_cols is None:
            numeric = bool(present) and all(_is_number(v) for v in present)
        else:
            numeric = spec["key"] in numeric_cols
        if spec["format"] is None:
            spec["format"] = "fmt" if numeric else "text"
        spec["numeric"] = numeric or spec["format"] in ("fmt", "pct", "duration")
        out.append(spec)
    return out


def cell(row: Any, spec: Mapping) -> Any:
    """Value of column ``spec`` in ``row`` (a mapping, or a sequence indexed by column position)."""
    if isinstance(row, Mapping):
        return row.get(spec["key"])
    if isinstance(row, (list, tuple)):
        return row[spec["pos"]] if spec["pos"] < len(row) else None
    return getattr(row, str(spec["key"]), None)


def is_highlighted(highlight: Any, index: int, row: Any) -> bool:
    """``highlight`` is a row index, a list of indices, or a key whose truthy value marks the row."""
    if highlight is None or highlight is False:
        return False
    if isinstance(highlight, bool):
        return False
    if isinstance(highlight, int):
        return index == highlight
    if isinstance(highlight, str):
        return bool(row.get(highlight)) if isinstance(row, Mapping) else False
    return index in set(highlight)


def badge_html(status: Any, label: Any = None) -> Markup:
    """``<span class="badge badge-ok">ok</span>`` (the label is escaped)."""
    return Markup('<span class="badge badge-{}">{}</span>').format(
        normalize_status(status), status if label is None else label)


def format_cell(value: Any, kind: str = "auto") -> Any:
    """Display form of one value: ``kind`` is fmt | pct | ts | duration | badge | code | auto.

    ``auto``: em dash for None, yes/no for bools, :func:`fmt` for numbers, a comma list
    for lists of scalars, compact JSON in ``<code>`` for nested data; Markup passes through.
    Plain strings are returned as ``str`` so Jinja escapes them.
    """
    if isinstance(value, Markup):
        return value
    if value is None or (isinstance(value, (list, tuple, Mapping)) and not value):
        return DASH
    if kind == "pct":
        return pct(value)
    if kind == "ts":
        return ts(value)
    if kind == "duration":
        return duration(value)
    if kind == "badge":
        return badge_html(value)
    if kind == "code":
        return Markup("<code>{}</code>").format(value)
    if isinstance(value, (str, bool)) or _is_number(value):
        return fmt(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, (Mapping, list, tuple)):
        return Markup("<code>{}</code>").format(json.dumps(to_jsonable(value), ensure_ascii=False))
    return fmt(value)


def card_items(items: Any) -> list[dict]:
    """Normalise the ``cards`` macro argument.

    Accepts a mapping ``{label: value}`` or a list of ``(label, value)`` pairs or dicts with
    ``label``, ``value`` and optional ``hint``, ``unit``, ``status``, ``format``.
    """
    pairs = items.items() if isinstance(items, Mapping) else (items or [])
    out = []
    for it in pairs:
        if isinstance(it, Mapping):
            d = dict(it)
        else:
            label, value = it
            d = {"label": label, "value": value}
        d.setdefault("hint", None)
        d.setdefault("unit", None)
        d["status"] = normalize_status(d["status"]) if d.get("status") else None
        d["display"] = format_cell(d.get("value"), d.get("format") or "auto")
        out.append(d)
    return out
