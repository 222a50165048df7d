"""Content hashes of frames: the training-data hash recorded in the registry."""
from __future__ import annotations

import hashlib

import polars as pl


def dtype_name(dtype: pl.DataType) -> str:
    """A dtype's name spelled by us, not by polars' ``str()`` (which may change in a release).

    The spelling is the one polars 1.x/2.x printed, so hashes recorded before stay valid.

        >>> dtype_name(pl.Datetime("us", "UTC")), dtype_name(pl.List(pl.Int64))
        ("Datetime(time_unit='us', time_zone='UTC')", 'List(Int64)')
    """
    kind = type(dtype).__name__ if isinstance(dtype, pl.DataType) else dtype.__name__
    if isinstance(dtype, pl.Datetime):
        return f"Datetime(time_unit={dtype.time_unit!r}, time_zone={dtype.time_zone!r})"
    if isinstance(dtype, pl.Duration):
        return f"Duration(time_unit={dtype.time_unit!r})"
    if isinstance(dtype, pl.Decimal):
        return f"Decimal(precision={dtype.precision}, scale={dtype.scale})"
    if isinstance(dtype, pl.List):
        return f"List({dtype_name(dtype.inner)})"
    if isinstance(dtype, pl.Array):
        return f"Array({dtype_name(dtype.inner)}, shape={dtype.shape})"
    if isinstance(dtype, pl.Struct):
        return "Struct({" + ", ".join(f"{f.name!r}: {dtype_name(f.dtype)}" for f in dtype.fields) + "})"
    return kind


def frame_hash(df: pl.DataFrame) -> str:
    """sha256 over column names, dtypes and values (row order matters).

    Independent of polars' internal hash functions, which are not stable
    across versions.

    Example:
        >>> frame_hash(pl.DataFrame({"a": [1, 2]})) == frame_hash(pl.DataFrame({"a": [1, 2]}))
        True
    """
    h = hashlib.sha256()
    h.update(str(df.shape).encode())
    for name in df.columns:
        s = df.get_column(name)
        h.update(f"{name}:{dtype_name(s.dtype)}".encode())
        h.update(s.is_null().to_numpy().tobytes())
        if s.dtype == pl.String or s.dtype == pl.Categorical or s.dtype == pl.Enum:
            h.update("\x1f".join(s.cast(pl.String).fill_null("").to_list()).encode())
        elif s.dtype.is_temporal():
            h.update(s.to_physical().fill_null(0).to_numpy().tobytes())
        elif s.dtype.is_numeric() or s.dtype == pl.Boolean:
            h.update(s.fill_null(0).to_numpy().tobytes())
        else:
            h.update(repr(s.to_list()).encode())
    return h.hexdigest()


def files_hash(paths: list[str]) -> str:
    """sha256 over the bytes of ``paths`` in sorted order (streamed, 1 MiB chunks)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
