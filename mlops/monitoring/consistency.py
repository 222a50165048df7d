"""Online/offline consistency: what the server logged vs what the offline engine computes.

Chronon measures it this way (``spark/.../stats/CompareMetrics.scala``): join the logged
feature values ("online", Chronon's *left*) with the offline backfill of the same
queries ("offline", *right*) and count per feature ``both_null``, ``online_null``
(Chronon ``left_null``), ``offline_null`` (``right_null``), ``mismatch`` (both present,
not equal) and, for numbers, the symmetric mean absolute percentage error ``smape``.
Here floats within ``tolerance`` (absolute, 1e-9 by default, as ``action=parity``) count
as equal, NaN equals NaN, categories compare exactly. ``mismatch_rate`` is
``(mismatch + online_null + offline_null) / compared``.
"""
from __future__ import annotations

import polars as pl

from mlops.errors import DataError

_ON, _OFF = "__online", "__offline"


def compare_features(online: pl.DataFrame, offline: pl.DataFrame, *, keys: list[str],
                     numeric: list[str], categorical: list[str], tolerance: float = 1e-9,
                     max_examples: int = 20) -> dict:
    """Per-feature consistency of ``online`` rows against ``offline`` rows joined on ``keys``.

    Both frames hold ``keys`` and the feature columns. Offline keys must be unique
    (an ambiguous key is an error for the caller to resolve). Returns ``rows`` (online),
    ``matched``, ``unmatched`` (online rows without an offline row: not compared),
    ``unmatched_examples`` and ``features``: ``{name: {type, compared, both_null,
    online_null, offline_null, mismatch, mismatch_rate, max_abs_diff, smape, examples}}``.

    >>> on = pl.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 2.0, None], "k": ["u", "v", "w"]})
    >>> off = pl.DataFrame({"id": ["a", "b", "c"], "x": [1.0, 2.5, 3.0], "k": ["u", "v", "z"]})
    >>> r = compare_features(on, off, keys=["id"], numeric=["x"], categorical=["k"])
    >>> r["features"]["x"]["mismatch"], r["features"]["x"]["online_null"], r["features"]["k"]["mismatch"]
    (1, 1, 1)
    """
    feats = [*numeric, *categorical]
    for name, frame in (("online", online), ("offline", offline)):
        missing = [c for c in [*keys, *feats] if c not in frame.columns]
        if missing:
            raise DataError(f"the {name} rows lack column(s) {missing}", key=name,
                            fix="log and recompute the same feature plan")
    dup = offline.select(keys).is_duplicated()
    if dup.any():
        raise DataError(f"{int(dup.sum())} offline rows share a join key {keys}", key="keys",
                        fix="join on a unique event id (data.event_id)")
    left = online.select(*keys, *[pl.col(f).alias(f + _ON) for f in feats])
    right = offline.select(*keys, *[pl.col(f).alias(f + _OFF) for f in feats])
    joined = left.join(right.with_columns(pl.lit(True).alias("__found")), on=keys, how="left",
                       nulls_equal=False)
    found = joined["__found"].fill_null(False)
    matched = joined.filter(found)
    out = {"rows": online.height, "matched": matched.height,
           "unmatched": online.height - matched.height,
           "unmatched_examples": joined.filter(~found).select(keys).head(max_examples).to_dicts(),
           "tolerance": tolerance, "features": {}}
    for f in feats:
        out["features"][f] = _feature(matched, keys, f, f in numeric, tolerance, max_examples)
    return out


def _feature(df: pl.DataFrame, keys: list[str], f: str, is_num: bool, tol: float,
             max_examples: int) -> dict:
    a, b = pl.col(f + _ON), pl.col(f + _OFF)
    if is_num:
        a, b = a.cast(pl.Float64), b.cast(pl.Float64)
        both_nan = a.is_nan() & b.is_nan()
        diff = (a - b).abs()
        differs = ~both_nan & (diff.is_nan() | (diff > tol))
    else:
        a, b = a.cast(pl.String), b.cast(pl.String)
        differs = a != b
    flags = df.with_columns(
        (a.is_null() & b.is_null()).alias("__both_null"),
        (a.is_null() & b.is_not_null()).alias("__online_null"),
        (a.is_not_null() & b.is_null()).alias("__offline_null"),
        (a.is_not_null() & b.is_not_null() & differs).fill_null(False).alias("__mismatch"))
    counts = flags.select(pl.col("__both_null", "__online_null", "__offline_null",
                                 "__mismatch").sum()).row(0, named=True)
    res = {"type": "numeric" if is_num else "categorical", "compared": df.height,
           "both_null": counts["__both_null"], "online_null": counts["__online_null"],
           "offline_null": counts["__offline_null"], "mismatch": counts["__mismatch"],
           "max_abs_diff": None, "smape": None}
    bad = res["online_null"] + res["offline_null"] + res["mismatch"]
    res["mismatch_rate"] = bad / df.height if df.height else 0.0
    if is_num and df.height:
        finite = flags.filter(a.is_finite() & b.is_finite())
        stats = finite.select((a - b).abs().max().alias("max"),
                              pl.when((a.abs() + b.abs()) != 0)
                              .then(2 * (a - b).abs() / (a.abs() + b.abs()))
                              .otherwise(0.0).mean().alias("smape")).row(0, named=True)
        res["max_abs_diff"], res["smape"] = stats["max"], stats["smape"]
    wrong = flags.filter(pl.col("__online_null") | pl.col("__offline_null") | pl.col("__mismatch"))
    res["examples"] = (wrong.select(*keys, pl.col(f + _ON).alias("online"),
                                    pl.col(f + _OFF).alias("offline"))
                       .head(max_examples).to_dicts())
    return res
