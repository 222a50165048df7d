"""Store payloads <-> polars frames, vectorized (never row by row in Python).

Events and feature rows are stored as JSON objects: :func:`encode_rows` builds them with
``struct.json_encode``, :func:`decode_rows` reads them back with ``str.json_decode``
and explicit dtypes. Times are epoch microseconds (``US`` is the in-frame dtype).

Example:
    >>> import polars as pl
    >>> encode_rows(pl.DataFrame({"x": [1.5, None]}), ["x"])
    ['{"x":1.5}', '{"x":null}']
    >>> decode_rows(['{"x":1.5}'], {"x": pl.Float64})["x"].to_list()
    [1.5]
"""
from __future__ import annotations

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
