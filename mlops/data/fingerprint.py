"""Content hashes of frames: the training-data hash recorded in the registry."""
from __future__ import annotations

import hashlib

import polars as pl


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
        h.update(f"{name}:{s.dtype}".encode())
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
