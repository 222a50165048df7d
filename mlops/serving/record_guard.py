"""Per-record guard of a micro-batch: one bad record never fails its batch-mates.

After the features of a micro-batch are computed, :func:`guard_batch` finds the rows
the model must not see as they are:

- rows whose computed features are NaN or +-inf (e.g. window sums that overflow);
- rows validation flagged as invalid under ``invalid_record_policy=default`` (an event
  time too far ahead of the server clock).

With ``policy="reject"`` the request owning a non-finite row answers 422 naming the
record and the feature; with ``policy="default"`` the row is answered without the model
(the declared ``breaker.default_value``, else no value: ``abstain``) with a warning.
Either way such rows never enter the online store or the breaker window, and the model
is called on a copy of the features where their non-finite values are replaced (their
scores are discarded), so every other record of the batch is scored normally.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mlops.serving.validation import error, nonfinite_rows


@dataclass
class Guard:
    """What :func:`guard_batch` decided for one micro-batch."""

    rejected: dict[int, list[dict]] = field(default_factory=dict)  # request -> 422 details
    unsafe: np.ndarray | None = None     # per row: answered without the model, not stored
    features: object = None  # features safe for the model (a frame, or rows as dicts)

    def any_unsafe(self) -> bool:
        return self.unsafe is not None and bool(self.unsafe.any())


def guard_batch(X: pl.DataFrame, names: list[str], sizes: list[int],
                invalid: list[str | None], warnings: list[list[str]], *,
                policy: str) -> Guard:
    """Inspect one micro-batch (``sizes`` records per request, flattened rows).

    Appends a warning to ``warnings`` of every row served the default.
    """
    bad = nonfinite_rows(X, names)
    guard = _decide(bad, lambda row, f: X[f][row], X.height, sizes, invalid, warnings,
                    policy)
    guard.features = X
    if bad:
        floats = [c for c in names if X.schema[c].is_float()]
        guard.features = X.with_columns(
            pl.when(pl.col(c).is_finite() | pl.col(c).is_null()).then(pl.col(c))
            .otherwise(0.0).alias(c) for c in floats)
    return guard


def guard_rows(rows: list[dict], floats: list[str], sizes: list[int],
               invalid: list[str | None], warnings: list[list[str]], *,
               policy: str) -> Guard:
    """:func:`guard_batch` for feature rows given as dicts (``floats``: the Float64
    features); ``Guard.features`` is then a list of rows safe for the model."""
    bad: dict[int, list[str]] = {}
    for i, r in enumerate(rows):
        feats = [f for f in floats if r[f] is not None and not math.isfinite(r[f])]
        if feats:
            bad[i] = feats
    guard = _decide(bad, lambda row, f: rows[row][f], len(rows), sizes, invalid, warnings,
                    policy)
    guard.features = rows if not bad else [
        {**r, **{f: 0.0 for f in bad[i]}} if i in bad else r for i, r in enumerate(rows)]
    return guard


def _decide(bad: dict[int, list[str]], value, n: int, sizes: list[int],
            invalid: list[str | None], warnings: list[list[str]], policy: str) -> Guard:
    """Reject the owning request (422) or serve each bad row the default."""
    unsafe = np.array([r is not None for r in invalid], dtype=bool) if invalid \
        else np.zeros(n, dtype=bool)
    guard = Guard(unsafe=unsafe)
    if not bad:
        return guard
    owner = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    for row, feats in bad.items():
        req = int(owner[row])
        shown = ", ".join(f"{f} = {value(row, f)}" for f in feats)
        if policy == "reject":
            guard.rejected.setdefault(req, []).append(error(
                ["records", row - int(starts[req]), feats[0]],
                f"computed feature(s) not finite: {shown}; the record is refused and not "
                "stored: check its values and the entity's recent events", "value_error"))
        else:
            unsafe[row] = True
            warnings[row].append(f"computed feature(s) not finite: {shown}; answered without "
                                 "the model and not stored")
    return guard
