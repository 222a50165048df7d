"""Rows sorted by (entity, time, input order) without a multi-column string sort.

``frame.sort([entity, ts], maintain_order=True)`` compares strings row against row
(0.35 s for 1M events over 20,000 entities here). The same order comes from integer
keys: each entity's rank among the distinct entities (a hash pass and a sort of the few
distinct values), then a stable integer sort, or, when the times are already in order
(event logs usually are), a stable radix sort of the ranks alone (two 16-bit passes).
Nulls sort first, as in polars' default sort, for the entity and the time.

Example:
    >>> import polars as pl
    >>> df = pl.DataFrame({"e": ["b", None, "a", "b"], "t": [2, 1, 3, 1]})
    >>> entity_time_order(df["e"], df["t"]).tolist()
    [1, 2, 3, 0]
"""
from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl


def entity_time_order(entity: pl.Series, t: pl.Series) -> np.ndarray:
    """The permutation that sorts rows by (``entity``, ``t``, input order), nulls first:
    ``frame[perm]`` equals ``frame.sort([entity, t], maintain_order=True)``."""
    return order_by_rank(entity_rank(entity), t)


def order_by_rank(rank: np.ndarray, t: pl.Series) -> np.ndarray:
    """:func:`entity_time_order` from the entities' ranks (:func:`entity_rank`)."""
    times = t.to_physical()
    nulls = times.null_count()
    if nulls == 0 and times.is_sorted():
        return _stable_radix(rank)
    ti = times.fill_null(0).to_numpy().astype(np.int64)
    if nulls:  # a null time sorts before every time of its entity
        return np.lexsort((ti, times.is_not_null().to_numpy(), rank))
    span = int(ti.max()) - int(ti.min()) + 1 if len(ti) else 1
    if (int(rank.max(initial=0)) + 1) * span < 1 << 62:
        return np.argsort(rank.astype(np.int64) * span + (ti - ti.min()), kind="stable")
    return np.lexsort((ti, rank))


def entity_rank(entity: pl.Series) -> np.ndarray:
    """Each row's entity as its rank among the distinct entities in sort order (uint32;
    null is rank 0, before every value)."""
    if entity.dtype == pl.String:
        return _string_rank(entity)
    keys = entity.unique().sort()  # nulls first
    ranks = pl.int_range(len(keys), dtype=pl.UInt32, eager=True)
    valid = keys.drop_nulls()
    coded = entity.replace_strict(valid, ranks[len(keys) - len(valid):], default=0,
                                  return_dtype=pl.UInt32)
    return coded.to_numpy()


def _string_rank(entity: pl.Series) -> np.ndarray:
    """:func:`entity_rank` of strings through categorical codes (one hash pass, about
    10 MB for 1M rows where a hash join took 60 MB): the distinct values (one row of
    each, found by its code), sorted, rank their codes."""
    codes = entity.cast(pl.Categorical).to_physical()
    nulls = codes.is_null().to_numpy() if codes.null_count() else None
    codes = codes.fill_null(0).to_numpy() if nulls is not None else codes.to_numpy()
    first = np.full(int(codes.max(initial=0)) + 1, len(codes), dtype=np.int64)
    rows = np.arange(len(codes) - 1, -1, -1)
    valid = rows if nulls is None else rows[~nulls[rows]]
    first[codes[valid]] = valid  # the last write is the code's first row
    present = np.flatnonzero(first < len(codes))
    table = np.zeros(len(first), dtype=np.uint32)
    table[present[entity.gather(first[present]).arg_sort().to_numpy()]] = np.arange(1, len(present) + 1)
    rank = table[codes]
    if nulls is not None:
        rank[nulls] = 0
    return rank


def _stable_radix(rank: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative ranks below 2**32: numpy sorts 16-bit keys stably
    by radix, so two passes (low half, then high half) order 32-bit ones."""
    if len(rank) == 0 or int(rank.max()) < 1 << 16:
        return np.argsort(rank.astype(np.uint16), kind="stable")
    low = np.argsort((rank & 0xFFFF).astype(np.uint16), kind="stable")
    high = np.argsort((rank[low] >> 16).astype(np.uint16), kind="stable")
    return low[high]


class RowOrder:
    """A frame's rows in (entity, time) order: its own order (``perm`` None: already
    sorted) or ``perm`` (``frame[perm]`` is sorted); ``run`` numbers the entities in
    that order (0, 1, ...)."""

    def __init__(self, run: np.ndarray, perm: np.ndarray | None = None):
        self.run, self.perm = run, perm

    @classmethod
    def of(cls, entity: pl.Series, t: pl.Series) -> RowOrder:
        """The order of a frame in any order, from its entity and time columns."""
        rank = entity_rank(entity)
        perm = order_by_rank(rank, t)
        sorted_rank = rank[perm]
        run = np.zeros(len(perm), dtype=np.int64)
        if len(perm):
            np.cumsum(sorted_rank[1:] != sorted_rank[:-1], out=run[1:])
        return cls(run, perm)


def sort_by_entity_time(lf: pl.LazyFrame, entity: str, ts: str) -> pl.LazyFrame:
    """``lf.sort([entity, ts], maintain_order=True)``, the same rows in the same order,
    by :func:`entity_time_order` (float entities, whose NaN polars orders its own way,
    keep polars' sort)."""
    schema = lf.collect_schema()
    if schema[entity].is_float():
        return lf.sort([entity, ts], maintain_order=True)
    return lf.map_batches(partial(_gathered, entity, ts), schema=schema)


def _gathered(entity: str, ts: str, df: pl.DataFrame) -> pl.DataFrame:
    return df[entity_time_order(df[entity], df[ts])]
