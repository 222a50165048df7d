"""Validate request records before they reach the feature engine.

Every bad input becomes a 422 with the field named, in FastAPI's error shape::

    {"detail": [{"loc": ["records", 0, "amount"], "msg": "...", "type": "..."}]}

Rules per source column of the plan (kinds come from the source schema when the caller
has it, else from how the plan uses the column):

- ``number``: int or float (not bool, not a numeric string), finite (no NaN/inf), not null,
  convertible to a float (a 400-digit integer is not) and, when ``max_abs`` is given, of
  magnitude at most ``max_abs`` (so window sums cannot overflow to inf);
- ``string``: a string that encodes as UTF-8 (no lone surrogates); null is allowed for
  categorical features (it becomes the plan's missing category);
- ``datetime`` (the event timestamp): an ISO-8601 string; with an offset it is converted
  to UTC (an offset that overflows the calendar, ``0001-01-01T00:00:00+01:00``, is an
  error); omitted -> the server's clock (now, UTC); with ``max_future_us`` a time further
  ahead of the server clock is invalid;
- ``entity``: a non-empty string.

Records that are well-formed but invalid (a future time) follow ``policy``: ``reject``
(an error, the request answers 422) or ``default`` (the record is flagged in
``CheckedRecords.invalid`` and is answered without the model: the declared
``breaker.default_value``, else no value (``abstain``); it never enters the store).

A record holds the plan's source columns, optionally ``request_id`` (a string: the
record's id, echoed back and logged) and the event id field. Any other field is an error
naming it and the expected fields (``unknown="reject"``, the default of
``serving.unknown_fields``), or is dropped (``unknown="ignore"``): a client that sends its
id as ``obs_id`` learns it at once instead of getting a generated id.

Unknown categories are not errors (the model's encoder handles unseen values) but add a
warning to that record.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

import polars as pl

from mlops.errors import ServingError
from mlops.features.compile import FeaturePlan

_MAX_ERRORS = 50
_EPOCH = datetime(1970, 1, 1)


class RequestValidationError(ServingError):
    """A request is malformed; ``details`` is the FastAPI-style error list and
    ``status`` the HTTP status to answer (422 unless the body itself is the problem:
    400 bad JSON, 408 too slow, 413 too large)."""

    def __init__(self, details: list[dict], status: int = 422):
        self.details = details
        self.status = status
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
    event_id: str | None = None      # optional field naming the event (idempotent ingestion)

    @classmethod
    def from_plan(cls, plan: FeaturePlan, source_schema: dict | pl.Schema | None = None,
                  *, event_id: str | None = None) -> "RequestSchema":
        """Kinds from ``source_schema`` when given, else inferred from the plan.

        ``event_id`` names the (optional) record field that identifies an event."""
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
                   frozenset(cat_raw), event_id if event_id not in kinds else None)

    def fields(self) -> tuple[str, ...]:
        """Every field a record may hold: the source columns, ``request_id``, the event id."""
        return (*self.kinds, "request_id", *([self.event_id] if self.event_id else []))

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
        try:
            dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise TypeError(f"{value!r} is outside the years 1..9999 once converted to "
                            "UTC: send a time inside that range") from None
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _show(v) -> str:
    """A short, safe description of a client value for an error message."""
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        return f"{type(v).__name__} of {len(v)} item(s)"  # repr could recurse deeply
    if isinstance(v, int) and not isinstance(v, bool) and abs(v).bit_length() > 64:
        return f"an integer of about {len(str(abs(v))) if abs(v).bit_length() < 14000 else 'many'} digits"
    text = repr(v)
    return f"{type(v).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _utf8(v: str) -> bool:
    if v.isascii():
        return True
    try:
        v.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        return False


_MAX_ID_CHARS = 256


def _check_request_id(rec: dict, loc: list, errors: list[dict]) -> None:
    rid = rec.get("request_id")
    if rid is not None and not isinstance(rid, str):  # never replaced silently by a new id
        errors.append(error([*loc, "request_id"], f"must be a string (the record's id); got "
                            f"{_show(rid)}: send it quoted, or leave it out for a generated id",
                            "string_type"))
    elif isinstance(rid, str) and (len(rid) > _MAX_ID_CHARS or not _utf8(rid)):
        errors.append(error([*loc, "request_id"], f"must be valid UTF-8 of at most "
                            f"{_MAX_ID_CHARS} characters", "value_error"))


def _check_unknown_fields(rec: dict, loc: list, expected: tuple[str, ...] | None,
                          errors: list[dict]) -> None:
    """An error per field the record should not hold (``expected`` None: anything goes)."""
    if expected is None:
        return
    for name in [k for k in rec if k not in expected][:5]:
        errors.append(error([*loc, str(name)[:60]], f"unknown field {str(name)[:60]!r}; a record has "
                            f"{', '.join(expected)} (the timestamp, request_id and the event "
                            "id are optional). Fix: rename or drop it, or set "
                            "serving.unknown_fields=ignore to drop unknown fields",
                            "extra_forbidden"))


def check_entities(records: list, entity: str, prefix: str = "records", *,
                   expected: tuple[str, ...] | None = None) -> list[str]:
    """The entity of every record (``mode="batch"`` needs nothing else), or 422.

    ``expected``: the fields a record may hold (:meth:`RequestSchema.fields`); None
    accepts any field."""
    out, errors = [], []
    for i, r in enumerate(records):
        e = r.get(entity) if isinstance(r, dict) else None
        if not isinstance(e, str) or not e or not _utf8(e):
            errors.append(error([prefix, i, entity], "field required (a non-empty string of "
                                f"valid UTF-8); got {_show(e)}", "missing"))
            continue
        _check_request_id(r, [prefix, i], errors)
        _check_unknown_fields(r, [prefix, i], expected, errors)
        out.append(e)
    if errors:
        raise RequestValidationError(errors[:_MAX_ERRORS])
    return out


@dataclass
class CheckedRecords:
    """What :func:`check_records` returns: typed columns plus per-record extras.

    ``event_ids`` holds the record's event id (str) or None; ``invalid`` holds, per
    record, None or why it is invalid (only with ``policy="default"``: such records are
    answered without the model and never stored).
    """

    columns: dict[str, list]
    warnings: list[list[str]]
    event_ids: list[str | None] = field(default_factory=list)
    invalid: list[str | None] = field(default_factory=list)


def _number(v, max_abs: float | None) -> tuple[float | None, str | None, str]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None, f"must be a finite number; got {_show(v)}", "type_error"
    try:
        x = float(v)
    except OverflowError:  # an integer literal of hundreds of digits
        return None, f"must be a finite number; got {_show(v)}, too large for a float", \
            "value_error"
    if not math.isfinite(x):
        return None, f"must be a finite number; got {x}", "value_error"
    if max_abs is not None and abs(x) > max_abs:
        return None, (f"must be at most {max_abs:g} in magnitude (serving.max_abs_value); "
                      f"got {x:g}"), "value_error"
    return x, None, ""


@dataclass
class _Limits:
    """What one record is checked against (see :func:`check_records`)."""

    schema: RequestSchema
    now_us: int
    known: dict[str, set]
    prefix: str
    max_future_us: int | None
    max_abs: float | None
    policy: str
    expected: tuple[str, ...] | None   # fields a record may hold; None: any


def check_records(records: list, schema: RequestSchema, *, now_us: int,
                  known_categories: dict[str, set] | None = None, prefix: str = "records",
                  max_future_us: int | None = None, max_abs: float | None = None,
                  policy: str = "reject", unknown: str = "reject") -> CheckedRecords:
    """Check every record; return :class:`CheckedRecords` or raise 422 details.

    Timestamps come back as integer microseconds since the epoch (UTC). A timestamp
    more than ``max_future_us`` ahead of ``now_us`` is invalid (an error with
    ``policy="reject"``, a flagged record with ``policy="default"``). A field outside
    :meth:`RequestSchema.fields` is an error with ``unknown="reject"`` and dropped
    with ``unknown="ignore"``.
    """
    lim = _Limits(schema, now_us, known_categories or {}, prefix, max_future_us, max_abs,
                  policy, schema.fields() if unknown == "reject" else None)
    out = CheckedRecords({c: [] for c in schema.kinds}, [], [], [])
    errors: list[dict] = []
    for i, rec in enumerate(records):
        w: list[str] = []
        out.warnings.append(w)
        if not isinstance(rec, dict):
            errors.append(error([prefix, i], f"must be an object; got {_show(rec)}",
                                "type_error"))
            continue
        _check_request_id(rec, [prefix, i], errors)
        _check_unknown_fields(rec, [prefix, i], lim.expected, errors)
        out.event_ids.append(_event_id(rec, [prefix, i], schema.event_id, errors))
        bad = None
        for col, kind in schema.kinds.items():
            value, why = _field(rec, col, kind, [prefix, i, col], lim, errors, w)
            if value is not _SKIP:
                out.columns[col].append(value)
            bad = bad or why
        out.invalid.append(bad)
        if bad is not None:
            w.append(f"invalid record: {bad}; answered without the model and not stored")
        if len(errors) >= _MAX_ERRORS:
            break
    if errors:
        raise RequestValidationError(errors)
    return out


_SKIP = object()  # a field with an error: nothing is appended to its column


def _event_id(rec: dict, loc: list, field_name: str | None, errors: list[dict]) -> str | None:
    """The record's event id as a string (None when absent); an error when malformed."""
    if field_name is None or rec.get(field_name) is None:
        return None
    raw = rec[field_name]
    if (isinstance(raw, str) and 0 < len(raw) <= _MAX_ID_CHARS and _utf8(raw)) or \
            (isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 2 ** 63):
        return str(raw)
    errors.append(error([*loc, field_name], "must be a non-empty string of at most "
                        f"{_MAX_ID_CHARS} characters or an integer; got {_show(raw)}",
                        "type_error"))
    return None


def _field(rec: dict, col: str, kind: str, loc: list, lim: _Limits, errors: list[dict],
           warnings: list[str]) -> tuple[object, str | None]:
    """(typed value or _SKIP, why the record is invalid under policy=default)."""
    if col not in rec:
        if kind == "datetime":
            return lim.now_us, None
        errors.append(error(loc, f"field required ({kind})", "missing"))
        return _SKIP, None
    v = rec[col]
    if kind == "number":
        x, msg, kind_err = _number(v, lim.max_abs)
        if msg is not None:
            errors.append(error(loc, msg, kind_err))
            return _SKIP, None
        return x, None
    if kind == "datetime":
        return _datetime(v, col, loc, lim, errors)
    if v is None and kind == "string" and col in lim.schema.nullable:
        return None, None
    if not isinstance(v, str) or (kind == "entity" and not v) or not _utf8(v):
        what = "a non-empty string" if kind == "entity" else "a string"
        errors.append(error(loc, f"must be {what} of valid UTF-8; got {_show(v)}",
                            "type_error"))
        return _SKIP, None
    cats = lim.known.get(col)
    if cats is not None and col in lim.schema.categorical and v not in cats:
        warnings.append(f"{col}: unknown category {v[:60]!r}; the model treats it as unseen")
    return v, None


def _datetime(v, col: str, loc: list, lim: _Limits, errors: list[dict]
              ) -> tuple[object, str | None]:
    try:
        t = _parse_ts(v)
    except TypeError as exc:
        errors.append(error(loc, str(exc), "type_error"))
        return _SKIP, None
    if lim.max_future_us is not None and t > lim.now_us + lim.max_future_us:
        msg = (f"is {(t - lim.now_us) / 1e6:.0f} s ahead of the server clock (the limit "
               f"is serving.max_future_seconds = {lim.max_future_us / 1e6:g} s): send "
               "the event's real time")
        if lim.policy == "reject":
            errors.append(error(loc, msg, "value_error"))
            return _SKIP, None
        return t, f"{col} {msg}"
    return t, None


def validate_records(records: list, schema: RequestSchema, *, now_us: int,
                     known_categories: dict[str, set] | None = None, prefix: str = "records"
                     ) -> tuple[dict[str, list], list[list[str]]]:
    """Check every record; return (columns, warnings per record) or raise 422 details.

    Timestamps come back as integer microseconds since the epoch (UTC). (Shape-only
    checks: no future-time or magnitude limits; see :func:`check_records`.)
    """
    out = check_records(records, schema, now_us=now_us, known_categories=known_categories,
                        prefix=prefix)
    return out.columns, out.warnings


def nonfinite_rows(features: pl.DataFrame, names: list[str]) -> dict[int, list[str]]:
    """``{row: [feature, ...]}`` of rows whose float features are NaN or +-inf.

    Nulls are missing values (the model's imputer handles them, as in training) and
    are not reported. One vectorized pass; empty dict in the common case.
    """
    floats = [n for n in names if features.schema[n].is_float()]
    if not floats or features.height == 0:
        return {}
    bad = features.select([(~pl.col(n).is_finite()).fill_null(False).alias(n) for n in floats])
    any_bad = bad.select(pl.any_horizontal(pl.all())).to_series()
    if not any_bad.any():
        return {}
    out: dict[int, list[str]] = {}
    for row in any_bad.arg_true().to_list():
        out[row] = [n for n in floats if bad[n][row]]
    return out
