"""Which variant serves a unit, and which shadow variants score it on the side."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from mlops.errors import ExperimentError
from mlops.experiments.assignment import assign_many, bucket, bucket_ranges, choose_variant
from mlops.experiments.spec import ExperimentSpec, Variant


def _empty_id(spec: ExperimentSpec) -> ExperimentError:
    # GrowthBook leaves units with an empty id out of the experiment; hashing "" would
    # pile every anonymous request into one variant, so refuse it instead.
    return ExperimentError(f"an empty unit id cannot be assigned in experiment {spec.key!r}",
                           key=spec.unit, fix="send a non-empty unit id (or skip the experiment)")


def route(spec: ExperimentSpec, unit_id: str | int) -> tuple[Variant, list[Variant]]:
    """``(served_variant, shadow_variants)`` for one unit.

    The served variant comes from the unit's bucket and the cumulative weights of the
    non-shadow variants; every shadow variant is returned too so the caller can score
    and log it, but only the served variant's prediction goes back to the client.

    >>> spec = ExperimentSpec(key="exp", variants=[
    ...     {"name": "a", "model": "m@champion", "weight": 0.5},
    ...     {"name": "b", "model": "m@challenger", "weight": 0.5},
    ...     {"name": "s", "model": "m@3", "shadow": True}], primary_metric="ctr")
    >>> served, shadows = route(spec, "user-42")
    >>> [v.name for v in shadows]
    ['s']
    """
    if unit_id == "":
        raise _empty_id(spec)
    served = spec.served_variants
    index = choose_variant(bucket(spec.seed, unit_id), bucket_ranges([v.weight for v in served]))
    # Weights sum to 1 and buckets are < 1, so a miss can only come from float rounding at
    # the very top of the last range: that unit belongs to the last variant.
    chosen = served[-1] if index is None else served[index]
    return chosen, spec.shadow_variants


def assign_units(spec: ExperimentSpec, unit_ids: Sequence[str | int] | pl.Series) -> list[str] | pl.Series:
    """Served variant name for each unit (vectorised ``route``, shadows left out)."""
    empty = (unit_ids.cast(pl.String) == "").any() if isinstance(unit_ids, pl.Series) \
        else any(u == "" for u in unit_ids)
    if empty:
        raise _empty_id(spec)
    served = spec.served_variants
    idx = assign_many(spec.seed, unit_ids, [v.weight for v in served])
    arr = idx.to_numpy() if isinstance(idx, pl.Series) else idx
    arr = np.where(arr < 0, len(served) - 1, arr)
    names = np.array([v.name for v in served], dtype=object)[arr]
    if isinstance(unit_ids, pl.Series):
        return pl.Series("variant", names.tolist(), dtype=pl.String)
    return names.tolist()
