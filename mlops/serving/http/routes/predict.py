"""``POST /predict`` and ``POST /invocations``: records in, predictions out.

Both read the body under the size and time limits, replay the stored answer of a
repeated ``Idempotency-Key``, validate the records (422 naming the field) and hand them
to the micro-batcher; an answer leaves only once its prediction-log record is durable.
In ``mode="batch"`` the answer comes from the store's prediction cache instead.
"""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlops.errors import StoreUnavailableError
from mlops.serving.http.limits import read_json_body
from mlops.serving.http.routes.common import error, serving_state, unprocessable
from mlops.serving.http.validation import RequestValidationError, check_entities, check_payload, check_records
from mlops.serving.http.validation import error as field_error
from mlops.serving.pipeline import Outcome, ParsedRequest, answer_from_cache, request_ids, retry_after
from mlops.serving.state import ServingState

router = APIRouter()

SCORING_PATHS = ("/predict", "/invocations")
# scope key of the callback that tells the micro-batcher a request is no longer on its way
ARRIVING = "mlops.arriving_done"


def _nothing() -> None:
    return None


async def _durable(out: Outcome) -> Outcome:
    """Answer only once the prediction's log record is fsynced (group commit)."""
    if out.durable is None:
        return out
    try:
        await asyncio.wrap_future(out.durable)
    except Exception as exc:  # not durable: the prediction must not be acknowledged
        return Outcome(503, detail=f"{exc}; retry the request", headers=retry_after(exc))
    return out


async def _score(state: ServingState, records: list, request: Request) -> Outcome:
    s = state.settings
    ids = request_ids(records)
    if s.mode == "batch":
        expected = state.request_schema.fields() if s.unknown_fields == "reject" else None
        ents = check_entities(records, state.plan.entity, expected=expected)
        return await run_in_threadpool(answer_from_cache, state, ents, ids)
    checked = check_records(records, state.request_schema, now_us=state.now_us(),
                            known_categories=state.categories,
                            max_future_us=int(s.max_future_seconds * 1_000_000),
                            max_abs=s.max_abs_value, policy=s.invalid_record_policy,
                            unknown=s.unknown_fields)
    request.scope.get(ARRIVING, _nothing)()  # no longer "on its way" to the batcher
    out = await state.batcher.submit(ParsedRequest(checked.columns, checked.warnings, ids,
                                                   checked.event_ids, checked.invalid), len(ids))
    return await _durable(out)


@router.post("/predict")
async def predict(request: Request):
    """``{"records": [...]}`` -> predictions, probabilities (classifiers), decisions, model,
    warnings, request ids."""
    return await _answer(request, "/predict", check_payload, lambda body: body)


@router.post("/invocations")
async def invocations(request: Request):
    """MLflow's ``dataframe_records`` / ``dataframe_split`` -> ``{"predictions": [...]}``."""
    return await _answer(request, "/invocations", mlflow_records,
                         lambda body: {"predictions": body["predictions"]})


async def _answer(request: Request, path: str, parse, shape):
    """Read the body, replay a retried request's first answer, else parse, score and
    keep the answer (``shape`` turns the scored body into the endpoint's response)."""
    state = serving_state(request)
    s = state.settings
    try:
        body = await read_json_body(request, s.max_body_bytes, s.body_timeout_seconds)
        async with state.answers.guard(request, path=path) as slot:
            if slot.replay is not None:  # a retry: the first answer, not re-scored
                return slot.replay
            records = parse(body, max_records=s.max_records)
            out = await _score(state, records, request)
            return slot.keep(error(out.status, out.detail, headers=out.headers)
                             if out.status != 200 else JSONResponse(shape(out.body)))
    except RequestValidationError as exc:
        return unprocessable(exc)
    except StoreUnavailableError as exc:  # the Idempotency-Key lookup found the store busy
        return error(503, str(exc), headers=retry_after(exc))


def mlflow_records(body, *, max_records: int) -> list:
    """The records of an MLflow scoring body (1..``max_records`` of them)."""
    if isinstance(body, dict) and "dataframe_records" in body:
        records = check_payload(body, max_records=10**9, key="dataframe_records")
    elif isinstance(body, dict) and "dataframe_split" in body:
        records = _split_records(body["dataframe_split"])
    else:
        raise RequestValidationError([field_error(["body"], "expected MLflow's dataframe_records "
                                                  "or dataframe_split format", "missing")])
    if len(records) > max_records:
        raise RequestValidationError([field_error(["records"], f"at most {max_records} records "
                                                  f"per request; got {len(records)}", "too_long")])
    if not records:
        raise RequestValidationError([field_error(["records"], "no records", "too_short")])
    return records


def _split_records(split) -> list[dict]:
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list):
        raise RequestValidationError([field_error(["dataframe_split"], "must be {\"columns\": "
                                                  "[...], \"data\": [[...], ...]}", "type_error")])
    cols = split["columns"]
    out = []
    for i, row in enumerate(split["data"]):
        if not isinstance(row, list) or len(row) != len(cols):
            raise RequestValidationError([field_error(["dataframe_split", "data", i],
                                                      f"must be a list of {len(cols)} values",
                                                      "type_error")])
        out.append(dict(zip(cols, row)))
    return out
