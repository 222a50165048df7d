"""Feature tables on disk: the plan that made them, shard files, their merge.

A feature table is parquet written by :func:`mlops.features.offline.sink_features`
with key-value metadata naming the plan hash (and the shard, when sharded). Whoever
reads a table checks that hash against the plan it expects, so a table built from a
different spec can never train a model silently (the training-serving skew guard
applied to training sets). The metadata travels inside each file, so copies, globs and
merged files keep it.

Sharding splits by entity (windows are per entity, so shards are independent); the
caller picks the rows of one shard with the same stable entity hash batch scoring
uses. Merging checks that every shard ``0..n-1`` is there exactly once, from one plan,
and that no entity appears in two shards.
"""
from __future__ import annotations

import glob as globlib
from dataclasses import dataclass

import polars as pl

from mlops.errors import DataError, SkewError
from mlops.filesystem import atomic_path

PLAN_HASH = "mlops.plan_hash"
PLAN_NAME = "mlops.plan_name"
SHARD = "mlops.shard"
NUM_SHARDS = "mlops.num_shards"


def table_metadata(plan_hash: str, plan_name: str, shard: int | None = None,
                   num_shards: int | None = None) -> dict[str, str]:
    """Parquet key-value metadata for a feature table (values are strings)."""
    meta = {PLAN_HASH: plan_hash, PLAN_NAME: plan_name}
    if shard is not None:
        meta.update({SHARD: str(shard), NUM_SHARDS: str(num_shards)})
    return meta


def shard_file_name(shard: int | None, num_shards: int) -> str:
    """``features.parquet`` or ``features-00002-of-00004.parquet``."""
    return "features.parquet" if shard is None else \
        f"features-{shard:05d}-of-{num_shards:05d}.parquet"


def _files(pattern: str, key: str) -> list[str]:
    files = sorted(globlib.glob(pattern, recursive=True))
    if not files:
        raise DataError(f"no files match {pattern!r}", key=key,
                        fix="point it at the parquet file(s) written by action=features")
    return files


def _metadata(path: str, key: str) -> dict[str, str]:
    try:
        return pl.read_parquet_metadata(path)
    except Exception as exc:  # polars raises several types for unreadable files
        raise DataError(f"{path} is not a readable parquet file: {str(exc).splitlines()[0]}",
                        key=key, fix="point it at the files written by action=features") from None


def open_table(pattern: str, plan_hash: str, *, key: str) -> pl.LazyFrame:
    """Scan the feature table(s) matching ``pattern`` after checking each file's plan hash.

    Raises SkewError naming both hashes when a file was built from another plan, and
    DataError when a file carries no plan hash (not written by this engine).
    """
    files = _files(pattern, key)
    for f in files:
        recorded = _metadata(f, key).get(PLAN_HASH)
        if recorded is None:
            raise DataError(f"{f} records no feature plan hash", key=key,
                            fix="build the table with action=features (and features_merge)")
        if recorded != plan_hash:
            raise SkewError(f"{f} was built with plan {recorded[:12]} but the configured plan is "
                            f"{plan_hash[:12]}", key=key,
                            fix="rebuild the table with this features= spec, or select the spec "
                                "it was built with")
    return pl.scan_parquet(files)


@dataclass
class ShardSet:
    """The verified shard files of one sharded feature run."""

    files: list[str]
    num_shards: int
    plan_hash: str
    plan_name: str


def check_shards(pattern: str, num_shards: int, plan_hash: str, *, key: str) -> ShardSet:
    """Every shard ``0..num_shards-1`` exactly once, all from the plan ``plan_hash``."""
    files = _files(pattern, key)
    seen: dict[int, list[str]] = {}
    names = set()
    for f in files:
        meta = _metadata(f, key)
        if SHARD not in meta:
            raise DataError(f"{f} is not a shard (no {SHARD} metadata)", key=key,
                            fix="match only the features-*-of-*.parquet files of one sweep")
        if int(meta[NUM_SHARDS]) != num_shards:
            raise DataError(f"{f} is shard {meta[SHARD]} of {meta[NUM_SHARDS]}, not of "
                            f"{num_shards}", key=key, fix="set features.num_shards to the "
                            "sweep's value, or match only that sweep's files")
        if meta.get(PLAN_HASH) != plan_hash:
            raise SkewError(f"{f} was built with plan {str(meta.get(PLAN_HASH))[:12]} but the "
                            f"configured plan is {plan_hash[:12]}", key=key,
                            fix="merge shards of one plan, with that features= spec")
        seen.setdefault(int(meta[SHARD]), []).append(f)
        names.add(meta.get(PLAN_NAME, ""))
    missing = [i for i in range(num_shards) if i not in seen]
    twice = {i: fs for i, fs in sorted(seen.items()) if len(fs) > 1}
    if missing or twice:
        detail = "; ".join([f"missing shards {missing}"] * bool(missing)
                           + [f"shard {i} written more than once: {fs}" for i, fs in twice.items()])
        raise DataError(detail, key=key, fix="re-run the missing shards (features.shard=i) and "
                        "match each shard's file once")
    return ShardSet([seen[i][0] for i in range(num_shards)], num_shards, plan_hash,
                    next(iter(names)))


def check_disjoint(shards: ShardSet, entity: str, *, key: str) -> None:
    """No entity in two shards: the files really are one sharded run, not overlapping ones."""
    per_file = [pl.scan_parquet(f).select(pl.col(entity).unique()).with_columns(
        pl.lit(i).alias("__shard")) for i, f in enumerate(shards.files)]
    clash = (pl.concat(per_file).group_by(entity).agg(pl.col("__shard").n_unique().alias("n"))
             .filter(pl.col("n") > 1).select(pl.len()).collect().item())
    if clash:
        raise DataError(f"{clash} entities appear in more than one shard", key=key,
                        fix="merge the shards of one sweep, written with one num_shards")


def merge_shards(shards: ShardSet, path) -> int:
    """Stream the shards, in shard order, into one table at ``path``; returns rows."""
    with atomic_path(path) as tmp:  # whole or not at all; a full disk names the path
        pl.scan_parquet(shards.files).sink_parquet(
            tmp, metadata=table_metadata(shards.plan_hash, shards.plan_name))
    return pl.scan_parquet(path).select(pl.len()).collect().item()
