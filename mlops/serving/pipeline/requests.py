"""What the request pipeline runs over: validated requests gathered into one micro-batch.

A :class:`ParsedRequest` is one validated ``POST /predict`` (typed columns, warnings,
ids); :class:`Batch` is the micro-batch the stages share, one entry per record in request
order, and collects what each stage decides (features, scores, refusals, what is clean);
an :class:`Outcome` is what one request is answered.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import polars as pl

from mlops.features.online import points_frame


@dataclass
class ParsedRequest:
    """A validated request: typed columns, warnings per record, request ids."""

    columns: dict[str, list]
    warnings: list[list[str]]
    request_ids: list[str]
    event_ids: list[str | None] | None = None   # per record (idempotent ingestion)
    invalid: list[str | None] | None = None     # per record: why the model does not answer it

    @property
    def size(self) -> int:
        return len(self.request_ids)


@dataclass
class Outcome:
    """What the endpoint answers: a body (200) or a status with a detail."""

    status: int = 200
    body: dict = field(default_factory=dict)
    detail: object = None
    durable: object = None  # a Future: the log record is fsynced once it resolves
    headers: dict | None = None  # e.g. Retry-After of a refusal


def retry_after(exc: BaseException) -> dict[str, str]:
    """The Retry-After header of a 503 that a retry may cure (a busy store, an unwritable
    log): the error's own ``retry_after`` seconds, else 1."""
    return {"Retry-After": str(getattr(exc, "retry_after", 1))}


def request_ids(records: list[dict]) -> list[str]:
    """Client-given ``request_id`` per record when it is a string, else a fresh uuid."""
    return [r["request_id"] if isinstance(r, dict) and isinstance(r.get("request_id"), str)
            and r["request_id"] else uuid.uuid4().hex for r in records]


@dataclass
class Batch:
    """One micro-batch, flattened: one entry per record, in request order.

    The stages fill in ``features`` (a :class:`~mlops.serving.pipeline.tables.FeatureTable`:
    rows or a frame), ``scores``, the requests refused (``rejected``: 422 details;
    ``refused_req``), the rows kept out of the store and the breaker (``unsafe``) and the
    log's durability future (``durable``).
    """

    sizes: list[int]
    cols: dict[str, list]             # request columns; the timestamp in epoch microseconds
    ids: list[str]
    warnings: list[list[str]]
    invalid: list[str | None]         # per record: why validation keeps it from the model
    event_ids: list[str | None]
    refused_req: list[bool]           # per request: answered 422/503, nothing served
    polars_schema: dict = field(default_factory=dict)  # request columns' dtypes
    timestamp: str = ""
    rejected: dict = field(default_factory=dict)   # request -> 422 details
    features: object = None          # FeatureTable
    backend: str | None = None       # the backend that computed the features
    as_of: list | None = None        # hybrid: features_as_of per record
    scores: object = None            # Scores
    unsafe: np.ndarray | None = None  # per record: answered without the model
    durable: object = None

    @property
    def n(self) -> int:
        return len(self.ids)

    @classmethod
    def gather(cls, requests: list[ParsedRequest], polars_schema: dict, timestamp: str) -> "Batch":
        """Concatenate the requests' columns and per-record extras."""
        cols = {c: [v for r in requests for v in r.columns[c]] for c in requests[0].columns}
        return cls([r.size for r in requests], cols,
                   [i for r in requests for i in r.request_ids],
                   [w for r in requests for w in r.warnings],
                   [v for r in requests for v in (r.invalid or [None] * r.size)],
                   [e for r in requests for e in (r.event_ids or [None] * r.size)],
                   [False] * len(requests), polars_schema, timestamp)

    @cached_property
    def points(self) -> pl.DataFrame:
        """The records as a typed frame (built only when a stage needs one)."""
        return points_frame(self.cols, self.polars_schema, self.timestamp)

    @cached_property
    def valid(self) -> np.ndarray:
        """Records validation accepts as events (a future time under
        ``invalid_record_policy=default`` is no event: it counts in no window)."""
        return np.array([why is None for why in self.invalid], dtype=bool)

    def row_ok(self) -> np.ndarray:
        """Rows of requests that are served (not refused)."""
        return np.repeat(~np.asarray(self.refused_req, dtype=bool), self.sizes)

    def owner(self) -> np.ndarray:
        """The request of every row."""
        return np.repeat(np.arange(len(self.sizes)), self.sizes)

    def refuse(self, request: int, details: list[dict]) -> None:
        """Answer ``request`` 422 with ``details`` (added to any it already has)."""
        self.rejected.setdefault(request, []).extend(details)
        self.refused_req[request] = True
