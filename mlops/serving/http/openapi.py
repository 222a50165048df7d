"""``/openapi.json`` with schemas from the served plan, and ``/docs`` without a CDN.

The scoring endpoints read raw bodies (their validation is ours, per record, with the
field named), so FastAPI cannot infer their schemas. :func:`openapi_schema` writes them
from the plan's source columns: one property per request field with its JSON type
(``number``; ``string``; ``string`` + ``date-time`` for the event timestamp), which are
required, which accept null, and an example record. Responses (200 and 422) are
described too.

``/docs`` is Swagger UI served from the ``swagger-ui-bundle`` package's files (no network
at run time); without that package, a small self-contained page lists the endpoints and
links ``/openapi.json``.

Example:
    >>> schema = openapi_schema(app, state)            # doctest: +SKIP
    >>> schema["components"]["schemas"]["Record"]["required"]   # doctest: +SKIP
"""
from __future__ import annotations

import html
import json
from datetime import datetime, timezone

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

from mlops.training.task import is_regression_model

OPENAPI_VERSION = "3.0.3"   # what the bundled Swagger UI 4 renders
ASSETS = "/docs/assets"


def _example_value(col: str, kind: str, categories: dict[str, set]):
    if kind == "number":
        return 42.0
    if kind == "datetime":
        return datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    if kind == "entity":
        return f"{col}-0001"
    known = sorted(categories.get(col, ()))
    return known[0] if known else "a"


def record_schema(request_schema, categories: dict[str, set], unknown_fields: str = "reject"
                  ) -> tuple[dict, dict]:
    """(JSON schema of one request record, an example record).

    With ``unknown_fields="reject"`` (the default) the schema closes the record
    (``additionalProperties: false``), as the server answers 422 to any other field.
    """
    props, required, example = {}, [], {}
    for col, kind in request_schema.kinds.items():
        if kind == "number":
            p = {"type": "number", "description": "a finite number"}
        elif kind == "datetime":
            p = {"type": "string", "format": "date-time",
                 "description": "ISO-8601; naive = UTC; omitted = the server's clock"}
        elif kind == "entity":
            p = {"type": "string", "minLength": 1, "description": "the entity key"}
        else:
            p = {"type": "string"}
            if col in request_schema.nullable:
                p["nullable"] = True
                p["description"] = "null = the missing category"
            if categories.get(col):
                p["description"] = (p.get("description", "") + "; known: "
                                    + ", ".join(sorted(categories[col])[:30])).lstrip("; ")
        example[col] = _example_value(col, kind, categories)
        p["example"] = example[col]
        props[col] = p
        if kind != "datetime":
            required.append(col)
    props["request_id"] = {"type": "string", "minLength": 1, "maxLength": 256,
                           "description": "optional client id of the record, a string (echoed "
                           "in request_ids and the prediction log; omitted = generated)"}
    if request_schema.event_id:
        props[request_schema.event_id] = {
            "oneOf": [{"type": "string", "minLength": 1, "maxLength": 256}, {"type": "integer"}],
            "description": "optional event id: the same event sent twice is stored once"}
    closed = unknown_fields == "reject"
    out = {"type": "object", "properties": props, "required": required,
           "additionalProperties": not closed}
    if closed:
        out["description"] = ("Any other field is refused with 422 naming it "
                              "(serving.unknown_fields=ignore drops unknown fields instead).")
    return out, example


def _answers(state) -> dict:
    """The answer fields by task: ``predictions`` for every model, ``probabilities`` for a
    classifier only, ``decisions`` per record."""
    classifier = not is_regression_model(state.model)
    what = (f"the class per record, decided at the version's threshold "
            f"({state.info.decision_threshold:g}: its policy, or an override)" if classifier
            else "the predicted value per record")
    out = {"predictions": {"type": "array", "items": {"nullable": True},
                           "description": f"{what}; null where the server abstained"}}
    if classifier:
        out["probabilities"] = {"type": "array", "items": {"type": "number", "nullable": True},
                                "description": "P(positive class) per record; null where the "
                                               "server abstained (never a regressor's value)"}
    out["decisions"] = {"type": "array", "items": {
        "type": "string", "enum": ["model", "fallback", "default", "abstain", "cache"]},
        "description": "who answered each record: the model, the declared fallback version, "
                       "the declared default value, nobody (abstain: the circuit breaker is "
                       "tripped or the record is invalid; no value is invented), or the "
                       "batch cache"}
    return out


def _components(state) -> dict:
    record, example = record_schema(state.request_schema, state.categories,
                                    state.settings.unknown_fields)
    ref = {"$ref": "#/components/schemas/Record"}
    cols = list(example)
    return {
        "Record": {**record, "example": example},
        "PredictRequest": {"type": "object", "required": ["records"],
                           "properties": {"records": {"type": "array", "items": ref,
                                                      "minItems": 1,
                                                      "maxItems": state.settings.max_records}},
                           "example": {"records": [example]}},
        "InvocationsRequest": {
            "type": "object", "description": "MLflow scoring format: dataframe_records or "
                                             "dataframe_split",
            "properties": {"dataframe_records": {"type": "array", "items": ref},
                           "dataframe_split": {"type": "object", "properties": {
                               "columns": {"type": "array", "items": {"type": "string"}},
                               "data": {"type": "array", "items": {"type": "array",
                                                                   "items": {}}}}}},
            "example": {"dataframe_split": {"columns": cols,
                                            "data": [[example[c] for c in cols]]}}},
        "ModelRef": {"type": "object", "properties": {"name": {"type": "string"},
                                                      "version": {"type": "string"}}},
        "PredictResponse": {"type": "object", "properties": {
            **_answers(state),
            "model": {"$ref": "#/components/schemas/ModelRef"},
            "plan_hash": {"type": "string"},
            "warnings": {"type": "array", "items": {"type": "array",
                                                    "items": {"type": "string"}}},
            "request_ids": {"type": "array", "items": {"type": "string"}},
            "served_by": {"type": "string",
                          "enum": ["model", "fallback", "default", "abstain", "cache"]},
            "features_as_of": {"type": "array", "items": {"type": "string", "nullable": True},
                               "description": "hybrid mode: materialization time per record"}},
            "required": ["predictions", "decisions", "model", "plan_hash", "warnings",
                         "request_ids", "served_by"]},
        "InvocationsResponse": {"type": "object", "properties": {
            "predictions": {"type": "array", "items": {}}}},
        "ValidationError": {"type": "object", "properties": {"detail": {
            "type": "array", "items": {"type": "object", "properties": {
                "loc": {"type": "array", "items": {}}, "msg": {"type": "string"},
                "type": {"type": "string"}}}}}},
    }


def _body(name: str) -> dict:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _responses(ok: str) -> dict:
    def ref(n):
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{n}"}}}}
    return {"200": {"description": "scored", **ref(ok)},
            "422": {"description": "invalid request: each error names the field",
                    **ref("ValidationError")},
            "503": {"description": "not scored (breaker refusing, store down, log unwritable)"}}


def openapi_schema(app: FastAPI, state) -> dict:
    """The app's OpenAPI document with the plan's request and response schemas."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=str(state.info.version),
                      openapi_version=OPENAPI_VERSION, routes=app.routes,
                      description=f"Model {state.info.name} v{state.info.version}, feature "
                                  f"plan {state.plan.name} ({state.plan.spec_hash[:12]}), "
                                  f"mode {state.settings.mode}.")
    doc.setdefault("components", {}).setdefault("schemas", {}).update(_components(state))
    for path, req, ok in (("/predict", "PredictRequest", "PredictResponse"),
                          ("/invocations", "InvocationsRequest", "InvocationsResponse")):
        op = doc["paths"].get(path, {}).get("post")
        if op is not None:
            op["requestBody"] = _body(req)
            op["responses"] = _responses(ok)
    app.openapi_schema = doc
    return doc


docs_router = APIRouter()


def _swagger_assets():
    """The directory of the ``swagger-ui-bundle`` package's files, or None without it."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return swagger_ui_bundle.swagger_ui_path


@docs_router.get("/docs", include_in_schema=False)
async def docs(request: Request):
    """Swagger UI from local assets, or a self-contained page without them."""
    app = request.app
    if _swagger_assets() is None:  # no asset package: a self-contained page instead
        return HTMLResponse(plain_docs(app.openapi()))
    from fastapi.openapi.docs import get_swagger_ui_html
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs",
                               swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                               swagger_css_url=f"{ASSETS}/swagger-ui.css",
                               swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")


def install_docs(app: FastAPI, state) -> None:
    """``/openapi.json`` from :func:`openapi_schema` and a local ``/docs`` page."""
    app.openapi = lambda: openapi_schema(app, state)
    assets = _swagger_assets()
    if assets is not None:
        from fastapi.staticfiles import StaticFiles
        app.mount(ASSETS, StaticFiles(directory=assets), name="swagger-ui-assets")
    app.include_router(docs_router)


def plain_docs(doc: dict) -> str:
    """A self-contained HTML page: endpoints, and the example request of ``/predict``."""
    rows = "".join(f"<li><code>{html.escape(m.upper())} {html.escape(p)}</code> "
                   f"{html.escape(op.get('summary', ''))}</li>"
                   for p, ops in doc["paths"].items() for m, op in ops.items())
    example = doc["components"]["schemas"].get("PredictRequest", {}).get("example", {})
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(doc['info']['title'])}"
            f"</title><h1>{html.escape(doc['info']['title'])}</h1>"
            f"<p>{html.escape(doc['info'].get('description', ''))}</p><ul>{rows}</ul>"
            f"<h2>POST /predict example</h2><pre>{html.escape(json.dumps(example, indent=1))}"
            "</pre><p><a href=/openapi.json>/openapi.json</a></p>")
