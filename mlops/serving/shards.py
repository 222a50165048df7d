"""The shards of a sharded batch-scoring run, merged only when each is there exactly once.

``action=score serving.shard=i serving.num_shards=n`` writes ``predictions-0000i-of-0000n``
files (entities split by :func:`mlops.fnv.fnv1a32_utf8`, so shards are disjoint);
:func:`merge_shards` refuses a missing shard, a shard written twice and a row (or, without
an event id, an entity) found in two files, then writes one file, whole or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mlops.errors import DataError
from mlops.filesystem import atomic_path


@dataclass
class MergeReport:
    """What :func:`merge_shards` found and wrote."""

    shards: int
    files: list[str]
    rows: int
    entities: int

    def as_dict(self) -> dict:
        return {"shards": self.shards, "files": self.files, "rows": self.rows,
                "entities": self.entities}


def _shard_files(files: list[str], num_shards: int) -> None:
    seen: dict[int, list[str]] = {}
    for f in files:
        seen.setdefault(int(Path(f).stem.split("-")[1]), []).append(f)
    missing = [i for i in range(num_shards) if i not in seen]
    twice = sorted(i for i, fs in seen.items() if len(fs) > 1)
    if missing or twice or not files:
        raise DataError(f"shards missing: {missing}; shards written more than once: {twice}",
                        key="serving.input",
                        fix="re-run the missing shards (serving.shard=i) and remove duplicates")


def merge_shards(files: list[str], num_shards: int, *, entity: str, event_id: str | None,
                 out: str | Path) -> MergeReport:
    """Check the shard files of one run (see the module docstring) and write them as ``out``."""
    _shard_files(files, num_shards)
    merged = pl.scan_parquet(files)
    counts = merged.select(pl.len().alias("rows"), pl.col(entity).n_unique().alias("entities")
                           ).collect().row(0, named=True)
    if event_id and event_id in merged.collect_schema():
        dup = counts["rows"] - merged.select(pl.col(event_id).n_unique()).collect().item()
        what = "rows"
    else:  # no event id: shards partition entities, so an entity in two files is a duplicate
        dup = (pl.concat([pl.scan_parquet(f).select(entity).unique() for f in files])
               .group_by(entity).len().filter(pl.col("len") > 1).select(pl.len()).collect().item())
        what = "entities"
    if dup:
        raise DataError(f"{dup} {what} appear in more than one shard", key="serving.input",
                        fix="remove the duplicated shard files and re-run the merge")
    with atomic_path(Path(out)) as tmp:  # whole or not at all; a full disk names the path
        merged.sink_parquet(tmp)
    return MergeReport(num_shards, files, counts["rows"], counts["entities"])
