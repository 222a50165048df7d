"""Validate request records before they reach the feature engine.

Every bad input becomes a 422 with the field named, in FastAPI's error shape::

    {"detail": [{"loc": ["records", 0, "amount"], "msg": "...", "type": "..."}]}

Rules per source column of the plan (kinds come from the source schema when the caller
has it, else from how the plan uses the column):

- ``number``: int or float (not bool, not a numeric string), finite (no NaN/inf), not null;
- ``string``: a string; null is allowed for categorical features (it becomes the
  plan's missing category);
- ``datetime`` (the event timestamp): an ISO-8601 string; with an offset it is converted
  to UTC; omitted -> the server's clock (now, UTC);
- ``entity``: a non-empty string.

Unknown categories are not errors (the model's encoder handles unseen values) but add a
warning to that record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import polars as pl

from mlops.errors import ServingError
from mlops.features.compile import FeaturePlan

_MAX_ERRORS = 50
_EPOCH = datetime(1970, 1, 1)


class RequestValidationError(ServingError):
    """A request is malformed; ``details`` is the FastAPI-style error list."""

    def __init__(self, details: list[dict]):
        self.details = details
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        loc = ".".join(str(p) for p in first["loc"])
        super().__init__(f"{first['msg']} (and {len(details) - 1} more)" if len(details) > 1
                         else first["msg"], key=loc or None)


def error(loc: list, msg: str, kind: str) -> dict:
    """One entry of a 422 ``detail`` list."""
    return {"loc": loc, "msg": msg, "type": kind}


def _kind_of(dtype: pl.DataType) -> str:
    if dtype.is_temporal():
        return "datetime"
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "number"
    return "string"


@dataclass(frozen=True)
class RequestSchema:
    """Expected kind of each request field (the plan's source columns)."""

    entity: str
    timestamp: str
    kinds: dict[str, str]            # field -> number | string | datetime | entity
    nullable: frozenset[str]         # string fields where null means "missing category"
    categorical: frozenset[str]      # fields checked against known categories

    @classmethod
    def from_plan(cls, plan: FeaturePlan, source_schema: dict | pl.Schema | None = None
                  ) -> "RequestSchema":
        """Kinds from ``source_schema`` when given, else inferred from the plan."""
        schema = dict(source_schema or {})
        cat_raw = set(plan.resolved["categorical"])
        kinds = {}
        for col in plan.source_columns:
            if col == plan.entity:
                kinds[col] = "entity"
            elif col == plan.timestamp:
                kinds[col] = "datetime"
            elif col in schema:
                kinds[col] = _kind_of(schema[col])
            else:
                kinds[col] = "string" if col in cat_raw else "number"
        if plan.timestamp not in kinds:
            kinds[plan.timestamp] = "datetime"
        return cls(plan.entity, plan.timestamp, kinds,
                   frozenset(c for c in cat_raw if kinds.get(c) == "string"),
                   frozenset(cat_raw))

    def polars_schema(self) -> dict[str, pl.DataType]:
        """Dtypes of the columns :meth:`validate` returns."""
        out = {}
        for col, kind in self.kinds.items():
            out[col] = {"number": pl.Float64, "datetime": pl.Datetime("us")}.get(kind, pl.String)
        return out


def check_payload(body, *, max_records: int, key: str = "records") -> list:
    """Shape checks of ``{"records": [...]}``; returns the record list."""
    if not isinstance(body, dict) or key not in body:
        raise RequestValidationError([error([key], f"field required: send {{\"{key}\": "
                                            "[{...event fields...}]}", "missing")])
    records = body[key]
    if not isinstance(records, list) or not records:
        raise RequestValidationError([error([key], "must be a non-empty list of objects; got "
                                            f"{type(records).__name__}", "type_error")])
    if len(records) > max_records:
        raise RequestValidationError([error([key], f"at most {max_records} records per "
                                            f"request; got {len(records)}: split the request",
                                            "too_long")])
    return records


def _parse_ts(value) -> int:
    """ISO-8601 -> microseconds since epoch (naive = UTC)."""
    if not isinstance(value, str):
        raise TypeError(f"must be an ISO-8601 datetime string; got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise TypeError(f"must be an ISO-8601 datetime string like 2024-03-01T12:00:00; "
                        f"got {value!r}") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def validate_records(records: list, schema: RequestSchema, *, now_us: int,
                     known_categories: dict[str, set] | None = None, prefix: str = "records"
                     ) -> tuple[dict[str, list], list[list[str]]]:
    """Check every record; return (columns, warnings per record) or raise 422 details.

    Timestamps come back as integer microseconds since the epoch (UTC).
    """
    cols: dict[str, list] = {c: [] for c in schema.kinds}
    warnings: list[list[str]] = []
    errors: list[dict] = []
    known = known_categories or {}
    for i, rec in enumerate(records):
        w: list[str] = []
        warnings.append(w)
        if not isinstance(rec, dict):
            errors.append(error([prefix, i], f"must be an object; got {type(rec).__name__}",
                                "type_error"))
            continue
        for col, kind in schema.kinds.items():
            loc = [prefix, i, col]
            if col not in rec:
                if kind == "datetime":
                    cols[col].append(now_us)
                    continue
                errors.append(error(loc, f"field required ({kind})", "missing"))
                continue
            v = rec[col]
            if kind == "number":
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    got = "null" if v is None else f"{type(v).__name__} {v!r}"
                    errors.append(error(loc, f"must be a finite number; got {got}", "type_error"))
                    continue
                if not math.isfinite(v):
                    errors.append(error(loc, f"must be a finite number; got {v}", "value_error"))
                    continue
                cols[col].append(float(v))
            elif kind == "datetime":
                try:
                    cols[col].append(_parse_ts(v))
                except TypeError as exc:
                    errors.append(error(loc, str(exc), "type_error"))
            else:
                if v is None and kind == "string" and col in schema.nullable:
                    cols[col].append(None)
                    continue
                if not isinstance(v, str) or (kind == "entity" and not v):
                    what = "a non-empty string" if kind == "entity" else "a string"
                    got = "null" if v is None else f"{type(v).__name__} {v!r}"
                    errors.append(error(loc, f"must be {what}; got {got}", "type_error"))
                    continue
                cols[col].append(v)
                cats = known.get(col)
                if cats is not None and col in schema.categorical and v not in cats:
                    w.append(f"{col}: unknown category {v!r}; the model treats it as unseen")
        if len(errors) >= _MAX_ERRORS:
            break
    if errors:
        raise RequestValidationError(errors)
    return cols, warnings
