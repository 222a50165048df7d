"""Deterministic variant assignment: GrowthBook's v2 hashing (FNV-1a 32-bit).

``bucket(seed, unit_id)`` is ``fnv(str(fnv(seed + unit_id))) % 10000 / 10000`` with
``fnv`` = :func:`mlops.fnv.fnv1a32_utf16`,
the same number every GrowthBook SDK computes for ``hashVersion: 2``, so a unit lands
in the same variant here, in the serving router and in any GrowthBook client.

Strings are hashed per UTF-16 code unit, as GrowthBook's reference SDK does
(``str.charCodeAt``). For ASCII ids (uuids, integers, emails in ASCII) that is the
same as hashing UTF-8 bytes; for non-ASCII ids hashing UTF-8 bytes would put units
in different buckets than GrowthBook does, so we follow the SDK.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from mlops.errors import ExperimentError
from mlops.fnv import FNV_OFFSET, FNV_PRIME, fnv1a32_many, fnv1a32_utf16

_BUCKETS = 10000


def _unit_str(unit_id: object) -> str:
    # GrowthBook hashes str(attribute); ints are common ids. bool would become
    # "True" here but "true" in JS, so refuse it rather than disagree silently.
    if isinstance(unit_id, str):
        return unit_id
    if isinstance(unit_id, (int, np.integer)) and not isinstance(unit_id, (bool, np.bool_)):
        return str(int(unit_id))
    raise ExperimentError(
        f"The unit id must be a str or int; got {type(unit_id).__name__} ({unit_id!r}) instead",
        key="unit_id", fix="pass the unit id as a string")


def bucket(seed: str, unit_id: str | int) -> float:
    """The unit's position in [0, 1) for this seed (GrowthBook hash v2, 4 decimals).

    >>> bucket("seed", "a")
    0.0505
    """
    if not isinstance(seed, str):
        raise ExperimentError(f"The seed must be a str; got {type(seed).__name__} instead", key="seed")
    first = fnv1a32_utf16(seed + _unit_str(unit_id))
    return (fnv1a32_utf16(str(first)) % _BUCKETS) / _BUCKETS


def bucket_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """GrowthBook's getBucketRanges: variant i owns ``[cum_i, cum_i + coverage * w_i)``.

    Weights must already be validated (positive, summing to 1); coverage is clamped to [0, 1].

    >>> bucket_ranges([0.4, 0.6])
    [(0.0, 0.4), (0.4, 1.0)]
    """
    coverage = min(1.0, max(0.0, float(coverage)))
    ranges, cumulative = [], 0.0
    for w in weights:
        start = cumulative
        cumulative += float(w)
        ranges.append((start, start + coverage * float(w)))
    return ranges


def choose_variant(bucket_value: float, ranges: Sequence[tuple[float, float]]) -> int | None:
    """Index of the first range with ``start <= bucket < end``; None when outside all ranges."""
    for i, (start, end) in enumerate(ranges):
        if start <= bucket_value < end:
            return i
    return None


def _as_str_list(unit_ids: Sequence[str | int] | pl.Series) -> list[str]:
    if isinstance(unit_ids, pl.Series):
        if unit_ids.null_count():
            raise ExperimentError(
                f"unit ids must not be null; the series {unit_ids.name!r} has "
                f"{unit_ids.null_count()} nulls", key="unit_ids", fix="drop or fill null ids first")
        if unit_ids.dtype == pl.Boolean or unit_ids.dtype.is_float():
            raise ExperimentError(
                f"unit ids must be strings or integers; got dtype {unit_ids.dtype} instead",
                key="unit_ids", fix="cast the id column to pl.String")
        return unit_ids.cast(pl.String).to_list()
    ids = list(unit_ids)
    if all(type(x) is str for x in ids):
        return ids
    return [_unit_str(x) for x in ids]


def _hash_decimal(values: np.ndarray) -> np.ndarray:
    """fnv1a32_utf16(str(v)) (= utf8: digits are ASCII) for each uint32 v, without building the strings."""
    v = values.astype(np.uint64)
    n_digits = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        n_digits += v >= 10**k
    h = np.full(len(v), FNV_OFFSET, dtype=np.uint32)
    prime = np.uint32(FNV_PRIME)
    # Digit k (10**k place) is hashed only by numbers with more than k digits, and going
    # from k=9 down to 0 visits each number's digits most significant first.
    for k in range(9, -1, -1):
        digit = ((v // np.uint64(10**k)) % np.uint64(10)).astype(np.uint32) + np.uint32(48)
        h = np.where(n_digits > k, (h ^ digit) * prime, h)
    return h


def buckets_many(seed: str, unit_ids: Sequence[str | int] | pl.Series) -> np.ndarray:
    """``bucket(seed, id)`` for many ids at once (float64 array, identical values)."""
    if not isinstance(seed, str):
        raise ExperimentError(f"The seed must be a str; got {type(seed).__name__} instead", key="seed")
    ids = _as_str_list(unit_ids)
    if not ids:
        return np.empty(0, dtype=np.float64)
    joined = "".join(ids)
    buf = np.frombuffer(joined.encode("utf-16-le"), dtype="<u2")
    if joined.isascii():
        lengths = np.fromiter((len(s) for s in ids), dtype=np.int64, count=len(ids))
    else:
        lengths = np.fromiter((len(s.encode("utf-16-le")) // 2 for s in ids),
                              dtype=np.int64, count=len(ids))
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    # FNV is a stream: hash the shared seed prefix once and continue from that state.
    first = fnv1a32_many(buf, offsets, lengths, fnv1a32_utf16(seed))
    second = _hash_decimal(first)
    return (second % np.uint32(_BUCKETS)).astype(np.float64) / _BUCKETS


def assign_many(seed: str, unit_ids: Sequence[str | int] | pl.Series,
                weights: Sequence[float], *, coverage: float = 1.0) -> np.ndarray | pl.Series:
    """Variant index for each unit id (-1 where no range holds the bucket).

    Same answer as ``choose_variant(bucket(seed, id), bucket_ranges(weights))`` per id,
    vectorised with numpy uint32 arithmetic. A polars Series in gives an Int32 Series out
    (named ``variant_index``); a list in gives a numpy int array.

    >>> assign_many("exp-1", ["u1", "u2", "u3"], [0.5, 0.5]).tolist()  # doctest: +SKIP
    [1, 0, 1]
    """
    ranges = bucket_ranges(weights, coverage)
    b = buckets_many(seed, unit_ids)
    out = np.full(len(b), -1, dtype=np.int32)
    for i, (start, end) in enumerate(ranges):
        out[(out == -1) & (b >= start) & (b < end)] = i
    if isinstance(unit_ids, pl.Series):
        return pl.Series("variant_index", out, dtype=pl.Int32)
    return out
