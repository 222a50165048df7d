"""Store payloads <-> polars frames, vectorized (never row by row in Python).

Events and feature rows are stored as JSON objects: :func:`encode_rows` builds them with
``struct.json_encode``, :func:`decode_rows` reads them back with ``str.json_decode``
and explicit dtypes; :func:`encode_columns` writes the same bytes from plain Python
columns (a few request records: no frame). Times are epoch microseconds (``US`` is the
in-frame dtype).

Example:
    >>> import polars as pl
    >>> encode_rows(pl.DataFrame({"x": [1.5, None]}), ["x"])
    ['{"x":1.5}', '{"x":null}']
    >>> decode_rows(['{"x":1.5}'], {"x": pl.Float64})["x"].to_list()
    [1.5]
"""
from __future__ import annotations

import json
import math

import polars as pl

from mlops.features.compile import FeaturePlan

US = pl.Datetime("us")


def points_frame(columns: dict[str, list], schema: dict[str, pl.DataType],
                 timestamp: str) -> pl.DataFrame:
    """Request columns (timestamps as epoch microseconds) -> a typed points frame."""
    data = {c: pl.Series(c, v, dtype=pl.Int64 if c == timestamp else schema[c], strict=False)
            for c, v in columns.items()}
    data[timestamp] = data[timestamp].cast(US)
    return pl.DataFrame(data)


def payload_columns(plan: FeaturePlan) -> list[str]:
    """The source columns an event payload carries (all but entity and timestamp)."""
    return [c for c in plan.source_columns if c not in (plan.entity, plan.timestamp)]


def encode_rows(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    """One JSON object per row of ``frame[columns]`` (vectorized)."""
    if not columns:
        return ["{}"] * frame.height
    return frame.select(pl.struct(columns).struct.json_encode()).to_series().to_list()


def decode_rows(payloads: list[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Inverse of :func:`encode_rows` with explicit dtypes (missing keys -> null)."""
    if not schema:
        return pl.DataFrame(height=len(payloads))
    return (pl.Series("p", payloads, dtype=pl.String)
            .str.json_decode(pl.Struct(schema)).struct.unnest())


def epoch_us(frame: pl.DataFrame, ts: str) -> pl.Series:
    """Column ``ts`` of ``frame`` as integer epoch microseconds."""
    return frame[ts].cast(US).dt.epoch("us")


def _json_float(v: float) -> str:
    """A float exactly as polars' ``struct.json_encode`` writes it (non-finite: null):
    Python's shortest repr, except small exponents (``1e-05`` -> ``0.00001``,
    ``1e-07`` -> ``1e-7``)."""
    if not math.isfinite(v):
        return "null"
    r = repr(v)
    if "e-" not in r:
        return r
    mant, exp = r.split("e-")
    n = int(exp)
    if n >= 6:
        return f"{mant}e-{n}"
    sign = "-" if mant.startswith("-") else ""
    return f"{sign}0.{'0' * (n - 1)}{mant.lstrip('-').replace('.', '')}"


def _json_value(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return _json_float(v)
    return json.dumps(v, ensure_ascii=False)


def encode_columns(columns: list[str], cols: dict[str, list]) -> list[str]:
    """:func:`encode_rows` of plain Python columns (``cols[c]`` a list per column): the same
    bytes, so the store's same-payload identity holds whichever path stored an event."""
    keys = [json.dumps(c, ensure_ascii=False) for c in columns]
    n = len(next(iter(cols.values()))) if cols else 0
    return ["{" + ",".join(f"{k}:{_json_value(cols[c][i])}" for k, c in zip(keys, columns)) + "}"
            for i in range(n)]
