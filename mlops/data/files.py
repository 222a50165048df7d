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
    kind = _format_of(matches) if fmt == "auto" else fmt
    _check_files(matches, kind, timestamp_cols, columns or {})
    if kind == "parquet":
        lf = pl.scan_parquet(matches)
    elif kind == "csv":
        # timestamps are parsed explicitly below: polars 2 date sniffing across several
        # files turned every column into strings
        lf = pl.scan_csv(matches)
    else:
        raise DataError(f"format must be auto, parquet or csv; got {fmt!r}", key="data.format")
    return _parse_timestamps(_rename(lf, columns or {}), timestamp_cols, timestamp_format)


def files_sharing_ids(path: str, *, id_column: str, columns: dict[str, str] | None = None
                      ) -> list[tuple[str, str, int]]:
    """Pairs of files matched by ``path`` that hold the same ids, most shared first:
    ``[(file_a, file_b, shared ids), ...]`` (empty for one file). For error messages: a
    copy of the events inside the glob looks like duplicate events.

    >>> files_sharing_ids("nothing/*.csv", id_column="id")
    []
    """
    matches = sorted(glob.glob(str(path), recursive=True))
    if len(matches) < 2:
        return []
    source = next((src for src, ours in (columns or {}).items() if ours == id_column), id_column)
    scan = (pl.scan_parquet(matches, include_file_paths="__file") if _format_of(matches) == "parquet"
            else pl.scan_csv(matches, include_file_paths="__file", infer_schema=False))
    ids = scan.select(pl.col(source).cast(pl.String).alias("__id"), "__file").unique()
    shared = (ids.join(ids, on="__id").filter(pl.col("__file") < pl.col("__file_right"))
              .group_by("__file", "__file_right").len().sort("len", descending=True).collect())
    return [(a, b, int(n)) for a, b, n in shared.iter_rows()]


def _format_of(matches: list[str]) -> str:
    """parquet or csv, from the files' suffixes (all must agree)."""
    suffixes = {Path(m).suffix.lower() for m in matches}
    if suffixes <= {".parquet", ".pq"}:
        return "parquet"
    if suffixes <= {".csv"}:
        return "csv"
    raise DataError(f"cannot infer the format of {sorted(suffixes)}", key="data.format",
                    fix="set data.format=parquet or data.format=csv")


def _rename(lf: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """Rename source columns to ours; every mapped source column must exist."""
    schema = lf.collect_schema()
    mapping = dict(columns)
    missing = [c for c in mapping if c not in schema]
    if missing:
        raise DataError(f"column(s) {missing} not in the files; columns are {list(schema)}",
                        key="data.columns", fix="map existing source columns to our names")
    return lf.rename(mapping) if mapping else lf


def _parse_timestamps(lf: pl.LazyFrame, timestamp_cols: tuple[str, ...],
                      timestamp_format: str | None) -> pl.LazyFrame:
    """Timestamp columns as microsecond datetimes: strings parsed, other temporals cast."""
    schema = lf.collect_schema()
    for col in timestamp_cols:
        if col in schema and schema[col] == pl.String:
            parsed = (pl.col(col).str.to_datetime(timestamp_format, time_unit="us")
                      if timestamp_format else pl.col(col).str.to_datetime(time_unit="us"))
            lf = lf.with_columns(parsed)
        elif col in schema and schema[col].is_temporal():
            lf = lf.with_columns(pl.col(col).cast(pl.Datetime("us")))
    return lf


def parse_datetime_strings(df: pl.DataFrame, *, sample: int = 200) -> pl.DataFrame:
    """String columns whose every value reads as a date-time, parsed (csv has no types).

    A column is tried on its first ``sample`` non-null values, then converted whole only if
    every non-null value parses; anything else stays a string.

    >>> parse_datetime_strings(pl.DataFrame({"t": ["2024-01-02 03:04:05", None], "s": ["a", "b"]})).dtypes
    [Datetime(time_unit='us', time_zone=None), String]
    """
    out = []
    for name, dtype in df.schema.items():
        col = df.get_column(name)
        if dtype != pl.String or col.null_count() == col.len():
            continue
        head = col.drop_nulls().head(sample)
        if not head.str.contains(r"^\d{4}-\d\d-\d\d").all():
            continue
        try:
            parsed = col.str.to_datetime(time_unit="us", strict=False)
        except pl.exceptions.PolarsError:  # a format polars cannot infer: leave the strings
            continue
        if parsed.null_count() == col.null_count():
            out.append(parsed)
    return df.with_columns(out) if out else df


_OFFSET = r"(Z|[+-]\d\d:?\d\d)$"


def _file_schema(path: str, kind: str) -> dict:
    """Read one file's schema (and, for csv, a few rows): a broken file is named."""
    try:
        if kind == "parquet":
            return dict(pl.read_parquet_schema(path))
        return dict(pl.read_csv(path, n_rows=50, infer_schema=False).schema)
    except Exception as exc:  # polars raises several types for corrupt files
        raise DataError(f"cannot read {path} as {kind}: {str(exc).splitlines()[0][:200]}",
                        key="data.path", fix="fix or remove that file (or set data.format)") from None


def _zone_of(path: str, kind: str, col: str, dtype) -> str | None:
    """'naive', a time-zone name, or None when the column is absent/unknown."""
    if isinstance(dtype, pl.Datetime):
        return dtype.time_zone or "naive"
    if kind == "csv" and dtype == pl.String:
        sample = pl.read_csv(path, n_rows=50, columns=[col], infer_schema=False)[col].drop_nulls()
        if sample.len() == 0:
            return None
        zoned = sample.str.contains(_OFFSET)
        return "offset" if bool(zoned.all()) else ("naive" if not bool(zoned.any()) else "mixed")
    return None


def _check_files(matches: list[str], kind: str, timestamp_cols, mapping: dict) -> None:
    """Every file readable; timestamps naive everywhere or zoned everywhere (never mixed)."""
    reverse = {ours: src for src, ours in mapping.items()}
    zones: dict[str, dict[str, list[str]]] = {}
    for path in matches:
        schema = _file_schema(path, kind)
        for col in timestamp_cols:
            src = reverse.get(col, col)
            if src in schema:
                zone = _zone_of(path, kind, src, schema[src])
                if zone:
                    zones.setdefault(col, {}).setdefault(zone, []).append(path)
    for col, by_zone in zones.items():
        if len(by_zone) > 1 or "mixed" in by_zone:
            detail = "; ".join(f"{z}: {', '.join(Path(p).name for p in ps[:3])}"
                               f"{' ...' if len(ps) > 3 else ''}" for z, ps in sorted(by_zone.items()))
            raise DataError(f'column "{col}" mixes naive and time-zoned timestamps across files '
                            f"({detail})", key="data.path",
                            fix="write every file with the same convention (e.g. all UTC)")


def read_files(spec: str, *, key: str) -> pl.DataFrame:
    """All rows of the files matching ``spec`` (csv date-times parsed); a file that cannot
    be read is named, under ``key``."""
    try:  # polars reads schemas while scanning: a bad file can fail either step
        return parse_datetime_strings(scan_files(spec, key=key).collect())
    except DataError as exc:  # the file checks name the file under data.path: use our key
        raise DataError(exc.message, key=key, fix=exc.fix) from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        bad = _unreadable(sorted(glob.glob(spec, recursive=True)))
        where = f"{bad!r} is not a readable parquet/csv file" if bad else \
            f"the files matching {spec!r} cannot be read together"
        raise DataError(f"{where} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                        key=key, fix="fix or remove that file") from None


def _unreadable(files: list[str]) -> str | None:
    for f in files:
        try:
            if Path(f).suffix.lower() in (".parquet", ".pq"):
                pl.read_parquet(f, n_rows=1)
            else:
                pl.read_csv(f, n_rows=100)
        except (pl.exceptions.PolarsError, OSError):
            return f
    return None
