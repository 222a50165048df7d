"""File sources: parquet or csv paths (globs), scanned lazily, with column mapping.

Example:
    >>> lf = scan_files("data/*.parquet", columns={"uid": "user_id"})  # doctest: +SKIP
"""
from __future__ import annotations

import glob
from pathlib import Path

import polars as pl

from mlops.errors import DataError


def scan_files(path: str, *, fmt: str = "auto", columns: dict[str, str] | None = None,
               timestamp_format: str | None = None, timestamp_cols: tuple[str, ...] = (),
               key: str = "data.path") -> pl.LazyFrame:
    """Lazily scan every file matching ``path`` and rename ``columns`` (source -> ours).

    csv timestamp columns listed in ``timestamp_cols`` are parsed with
    ``timestamp_format`` (ISO 8601 when None).
    """
    matches = sorted(glob.glob(str(path), recursive=True))
    if not matches:
        raise DataError(f"no file matches {path!r}", key=key,
                        fix="check the path or glob (relative paths start at the working directory)")
    kind = fmt
    if kind == "auto":
        suffixes = {Path(m).suffix.lower() for m in matches}
        if suffixes <= {".parquet", ".pq"}:
            kind = "parquet"
        elif suffixes <= {".csv"}:
            kind = "csv"
        else:
            raise DataError(f"cannot infer the format of {sorted(suffixes)}", key="data.format",
                            fix="set data.format=parquet or data.format=csv")
    if kind == "parquet":
        lf = pl.scan_parquet(matches)
    elif kind == "csv":
        # timestamps are parsed explicitly below: polars 2 date sniffing across several
        # files turned every column into strings
        lf = pl.scan_csv(matches)
    else:
        raise DataError(f"format must be auto, parquet or csv; got {fmt!r}", key="data.format")
    schema = lf.collect_schema()
    mapping = dict(columns or {})
    missing = [c for c in mapping if c not in schema]
    if missing:
        raise DataError(f"column(s) {missing} not in the files; columns are {list(schema)}",
                        key="data.columns", fix="map existing source columns to our names")
    lf = lf.rename(mapping) if mapping else lf
    schema = lf.collect_schema()
    for col in timestamp_cols:
        if col in schema and schema[col] == pl.String:
            parsed = (pl.col(col).str.to_datetime(timestamp_format, time_unit="us")
                      if timestamp_format else pl.col(col).str.to_datetime(time_unit="us"))
            lf = lf.with_columns(parsed)
        elif col in schema and schema[col].is_temporal():
            lf = lf.with_columns(pl.col(col).cast(pl.Datetime("us")))
    return lf
