"""MkDocs hook: the configuration reference and the HTTP API, generated at every build.

- ``reference/configuration.md``: every key of the config tree (``mlops.config.schema``,
  whose serving part *is* ``mlops.serving.settings``), walked from the dataclasses: its
  type (the annotation), its default (what the built-in ``conf/`` composes to, unresolved
  interpolations shown as written), its rule (recorded while the settings check those
  defaults as they are built: ``mlops.constraints.recorded``) and the comment written beside
  the field.
- ``reference/http-api.md`` and ``reference/openapi.json``: the OpenAPI document the
  server publishes (``mlops.serving.http.openapi``), for the demo's plan and a small model.

Nothing here is hand-written per key, so a new key, type, default or rule shows up by itself.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
import tempfile
import typing
from pathlib import Path

SECTIONS = ("data", "features", "model", "training", "registry", "serving", "monitoring",
            "experiment", "lifecycle", "paths", "report")


# ---- the config tree ---------------------------------------------------------------------

def _compose(overrides: list[str]):
    """The composed config (built-in ``conf/``) with ``overrides``."""
    from hydra import compose, initialize_config_dir

    from mlops.config import register
    from mlops.package_files import BUILTIN_CONF
    register()
    with initialize_config_dir(config_dir=str(BUILTIN_CONF), version_base="1.3"):
        return compose(config_name="config", overrides=["paths.output_dir=outputs", *overrides])


def _defaults(overrides: list[str]) -> dict:
    """What the built-in ``conf/`` composes to, interpolations as written."""
    from omegaconf import OmegaConf
    return OmegaConf.to_container(_compose(overrides), resolve=False)


def _typed(overrides: list[str]):
    """(the typed config, the rule of every key its settings check as they are built)."""
    from mlops.config.validate import typed_config
    from mlops.constraints import recorded
    cfg = _compose(overrides)
    with recorded() as rules:
        typed = typed_config(cfg)
    return typed, rules


def _comments(cls) -> dict[str, str]:
    """``field -> the comment written beside it`` for ``cls`` and the classes it extends."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for m in re.finditer(r"^\s{4}(\w+)\s*:[^#\n]*#\s?(.*)$", source, flags=re.M):
            out[m.group(1)] = m.group(2).strip()
    return out


def _type_name(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + (" or null" if len(inner) < len(args) else "")
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {_type_name(args[0])} → {_type_name(args[1])}" if args else "mapping"
    if tp is typing.Any:
        return "any"
    return getattr(tp, "__name__", str(tp))


def _dataclass_in(tp):
    """The dataclass ``tp`` names (through Optional and list), or None."""
    for candidate in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(candidate):
            return candidate
        for inner in typing.get_args(candidate):
            if dataclasses.is_dataclass(inner):
                return inner
    return None


def _at(tree, key: str):
    for part in key.replace("[]", "").split("."):
        if isinstance(tree, list):
            tree = tree[0] if tree else None
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _shown(value) -> str:
    if isinstance(value, (dict, list)) and len(json.dumps(value)) > 60:
        return f"{type(value).__name__} of {len(value)} (see conf/)"
    return json.dumps(value) if not isinstance(value, str) else value


def _rows(cls, prefix: str, defaults, rules: dict[str, str]) -> list[tuple]:
    """(key, type, default, rule, comment) for every leaf under ``cls``, depth first."""
    hints, notes, out = typing.get_type_hints(cls), _comments(cls), []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") and f.name != "_target_":
            continue
        key, tp = f"{prefix}.{f.name}", hints[f.name]
        nested = _dataclass_in(tp)
        if nested is not None:
            inner = f"{key}[]" if typing.get_origin(tp) in (list, tuple) or "list" in _type_name(tp) else key
            out.append((key, _type_name(tp), "", rules.get(key, ""), notes.get(f.name, "")))
            out += _rows(nested, inner, defaults, rules)
            continue
        value = _at(defaults, key)
        shown = "" if value is None and "[]" in key else _shown(value)
        out.append((key, _type_name(tp), shown, rules.get(key, ""), notes.get(f.name, "")))
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _section_schema(section: str):
    from mlops.config.schema import SCHEMAS
    name = {"features": "feature_spec_schema", "data": "synthetic_schema"}.get(section,
                                                                              f"{section}_schema")
    return SCHEMAS[(section, name)]


def configuration_page() -> str:
    from mlops.config.schema import AppConfig, FileDataConfig
    defaults = _defaults(["experiment=ab_v1_v2"])
    defaults_files = _defaults(["experiment=ab_v1_v2", "data=files"])
    rules = {**_typed(["experiment=ab_v1_v2", "data=files", "data.path=x"])[1],
             **_typed(["experiment=ab_v1_v2"])[1]}
    lines = [
        "# Configuration reference", "",
        "Generated from the config schema (`mlops/config/schema.py` and the engine settings "
        "that are its groups, such as `mlops/training/settings.py`, `mlops/monitoring/settings.py` "
        "and `mlops/serving/settings.py`) at every docs build. **Default** is "
        "what the built-in `conf/` composes to (`${...}` interpolations as written); **rule** "
        "is what the validators check (types are checked by Hydra at compose time); the last "
        "column is the comment beside the field. Override any key on the command line "
        "(`mlops serving.port=9000`) or in your project's `conf/project.yaml`; keys under a "
        "mapping that the defaults do not have need a `+` (`+monitoring.column_types.x=categorical`).",
        "",
    ]
    for section in SECTIONS:
        variants = [(_section_schema(section), defaults, "")]
        if section == "data":
            variants = [(variants[0][0], defaults, " (data=synthetic, the default)"),
                        (FileDataConfig, defaults_files, " (data=files: your own events)")]
        for klass, tree, label in variants:
            doc = (inspect.getdoc(klass) or "").split("\n\n")[0].replace("\n", " ").replace("``", "`")
            lines += [f"## `{section}`{label}", "", doc, "",
                      "| key | type | default | rule | meaning |", "|---|---|---|---|---|"]
            lines += ["| " + " | ".join([f"`{_cell(row[0])}`", *map(_cell, row[1:])]) + " |"
                      for row in _rows(klass, section, tree, rules)]
            lines.append("")
    hints = typing.get_type_hints(AppConfig)
    lines += ["## Top-level keys", "", "| key | type | default |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {_cell(_type_name(hints[f.name]))} | {_cell(_shown(defaults.get(f.name)))} |"
              for f in dataclasses.fields(AppConfig) if f.name not in SECTIONS]
    return "\n".join(lines) + "\n"


# ---- the HTTP API --------------------------------------------------------------------------

def openapi_document() -> dict:
    """What ``GET /openapi.json`` answers for the demo plan (a small model fitted here)."""
    from mlops.data.synthetic import SyntheticParams, generate
    from mlops.features.compile import compile_plan
    from mlops.features.offline import compute_features
    from mlops.features.online.sqlite import SQLiteStore
    from mlops.serving.http.app import create_app
    from mlops.serving.skew import ModelInfo
    from mlops.serving.state import ServingState
    from mlops.training.estimator import build_estimator, build_pipeline
    typed, _ = _typed([])
    events = generate(SyntheticParams(n_users=60, days=20))
    plan = compile_plan(typed.features, events.schema)
    table = compute_features(plan, events.lazy(), keep=[plan.label.column]).collect()
    model = build_pipeline(build_estimator(typed.model._target_, typed.model.params),
                           numeric=plan.numeric, categorical=plan.categorical).fit(
        table.select(plan.feature_names), table[plan.label.column].to_numpy())
    with tempfile.TemporaryDirectory() as tmp:
        state = ServingState(plan=plan, model=model, store=SQLiteStore(Path(tmp) / "s.sqlite"),
                             info=ModelInfo(typed.model.name, "1", plan.spec_hash),
                             settings=typed.serving, source_schema=events.schema,
                             event_id=typed.data.event_id)
        doc = create_app(state).openapi()
        state.store.close()
    return doc


def _schema_table(schema: dict) -> list[str]:
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or " or ".join(p.get("type", "") for p in prop.get("oneOf", []))
        if prop.get("format"):
            kind += f" ({prop['format']})"
        rows.append(f"| `{name}` | {_cell(kind)} | {'yes' if name in required else 'no'} | "
                    f"{_cell(prop.get('description', ''))} |")
    return rows


def http_api_page(doc: dict) -> str:
    schemas = doc["components"]["schemas"]
    lines = ["# HTTP API", "",
             "Generated from the OpenAPI document the server publishes at `/openapi.json` "
             "(Swagger UI at `/docs`, served from local files). The record fields come from the "
             "served model's feature plan; this page shows the demo's plan "
             f"({_cell(doc['info'].get('description', ''))}). "
             "[The whole document](openapi.json).", ""]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            lines += [f"## `{method.upper()} {path}`", "", _cell(op.get("summary", "")), ""]
            if op.get("description"):
                lines += [op["description"], ""]
            for status, resp in op.get("responses", {}).items():
                lines.append(f"- **{status}**: {_cell(resp.get('description', ''))}")
            lines.append("")
    record = schemas.get("Record", {})
    lines += ["## The record", "", _cell(record.get("description", "")), ""]
    lines += _schema_table(record)
    lines += ["", "Example `POST /predict` body:", "", "```json",
              json.dumps(schemas.get("PredictRequest", {}).get("example", {}), indent=2), "```", ""]
    lines += ["## The answer", ""] + _schema_table(schemas.get("PredictResponse", {}))
    lines += ["", "## Errors", "", "Every 4xx names the field in FastAPI's shape:", ""]
    lines += _schema_table(schemas.get("ValidationError", {}))
    return "\n".join(lines) + "\n"


def on_files(files, config):
    """Add the generated pages to the site (they exist only in the build)."""
    from mkdocs.structure.files import File
    doc = openapi_document()
    for name, content in (("reference/configuration.md", configuration_page()),
                          ("reference/http-api.md", http_api_page(doc)),
                          ("reference/openapi.json", json.dumps(doc, indent=1))):
        files.append(File.generated(config, name, content=content))
    return files
