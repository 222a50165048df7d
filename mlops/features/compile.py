"""Compile a feature spec into one :class:`FeaturePlan` of polars expressions.

The plan is the only place feature logic exists: training evaluates it over
history (:mod:`mlops.features.offline`), serving evaluates the same expressions
at request time. Compilation validates every column and SQL expression against
the source schema, orders derived features by dependency, rejects cycles, and
hashes the resolved spec so a model can record exactly which plan it saw.

Example:
    >>> import polars as pl
    >>> schema = {"user_id": pl.String, "event_ts": pl.Datetime("us"), "amount": pl.Float64,
    ...           "is_fraud": pl.Int8, "label_ts": pl.Datetime("us")}
    >>> plan = compile_plan({"name": "demo", "raw": ["amount"],
    ...     "windows": [{"column": "amount", "aggs": ["mean"], "periods": ["1d"]}],
    ...     "derived": [{"name": "ratio", "expr": "amount / (amount_mean_1d + 1)"}]}, schema)
    >>> plan.feature_names
    ['amount', 'amount_mean_1d', 'ratio']
"""
from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass, field

import polars as pl

from mlops.errors import FeatureSpecError
from mlops.features.spec import FeatureSpec, parse_spec, resolve
from mlops.features.sql_guard import canonical_sql, check_sql

PLAN_FORMAT = 1  # bump when evaluation semantics change: old models then fail the skew guard
MISSING_CATEGORY = "__missing__"
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64,
            pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Boolean, pl.Decimal)


@dataclass(frozen=True)
class WindowFeature:
    name: str
    column: str | None
    agg: str
    period: str
    seconds: int
    default: float | None


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str      # "numeric" | "categorical"
    source: str    # "raw" | "categorical" | "window" | "derived"


@dataclass(frozen=True)
class FeaturePlan:
    """Compiled, hashed feature logic. Evaluate with :mod:`mlops.features.offline`."""

    name: str
    version: int
    entity: str
    timestamp: str
    label: dict
    features: tuple[Feature, ...]
    row_exprs: tuple[tuple[str, pl.Expr], ...]      # before windows (raw, row-level derived)
    windows: tuple[WindowFeature, ...]
    post_exprs: tuple[tuple[str, pl.Expr], ...]     # after windows, in dependency order
    source_columns: tuple[str, ...]                 # columns read from the source
    spec_hash: str
    resolved: dict = field(repr=False, compare=False)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def max_period_seconds(self) -> int:
        """History an online store must keep per entity to evaluate every window."""
        return max((w.seconds for w in self.windows), default=0)

    @property
    def short_hash(self) -> str:
        return self.spec_hash[:12]

    def describe(self) -> dict:
        """The plan's canonical description: names, kinds, windows, columns, parsed expressions.

        Built only from the plan's own data (never a library's text form of an expression),
        so it changes when the plan's meaning does and not when polars prints differently.
        """
        exprs = {d["name"]: canonical_sql(d["expr"]) for d in self.resolved["derived"]}
        return {
            "spec_hash": self.spec_hash, "name": self.name, "version": self.version,
            "entity": self.entity, "timestamp": self.timestamp, "label": self.label,
            "features": [[f.name, f.kind, f.source] for f in self.features],
            "windows": [asdict(w) for w in self.windows],
            "source_columns": list(self.source_columns),
            # evaluation order and stage; raw and categorical columns are described by `features`
            "row_level": [[n, exprs.get(n)] for n, _ in self.row_exprs],
            "after_windows": [[n, exprs.get(n)] for n, _ in self.post_exprs],
        }


def plan_hash(resolved: dict) -> str:
    """sha256 of the canonical JSON of the semantic part of a resolved spec."""
    def strip(entry):
        return {k: v for k, v in entry.items() if k != "key"}
    canon = {**resolved, "windows": [strip(w) for w in resolved["windows"]],
             "derived": [strip(d) for d in resolved["derived"]], "plan_format": PLAN_FORMAT}
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _unknown_column(col: str, known: list[str], key: str) -> FeatureSpecError:
    close = difflib.get_close_matches(col, known, n=1)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    return FeatureSpecError(f'unable to find column "{col}"; valid columns: {sorted(known)}.{hint}',
                            key=key, fix="fix the name or add the column to the source")


def _sql(expr_text: str, key: str) -> pl.Expr:
    # polars runs subqueries and table functions (read_csv, URLs) while parsing: check first
    check_sql(expr_text, key=key)
    try:
        return pl.sql_expr(expr_text)
    except Exception as exc:  # polars raises several types for SQL parse errors
        raise FeatureSpecError(f"invalid SQL expression {expr_text!r}: {exc}".split("\n")[0],
                               key=f"{key}.expr",
                               fix="write a SQL expression such as 'x / (y + 1)'; "
                                   "use ln(), log10() or log1p() for logarithms") from None


def _order_derived(derived: list[dict], deps: dict[str, set[str]]) -> list[dict]:
    """Topological order; a cycle is an error naming the cycle."""
    by_name = {d["name"]: d for d in derived}
    order, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = path[path.index(name):] + [name]
            raise FeatureSpecError(f"derived features form a cycle: {' -> '.join(cycle)}",
                                   key=by_name[name]["key"], fix="break the cycle")
        state[name] = "active"
        for dep in sorted(deps[name]):
            if dep in by_name:
                visit(dep, path + [name])
        state[name] = "done"
        order.append(by_name[name])

    for d in derived:
        visit(d["name"], [])
    return order


def compile_plan(spec: dict | FeatureSpec, schema: dict[str, pl.DataType] | pl.Schema) -> FeaturePlan:
    """Validate ``spec`` against the source ``schema`` and build the FeaturePlan."""
    resolved = resolve(parse_spec(spec))
    schema = dict(schema)
    _check_entity_and_time(resolved, schema)
    row_exprs, features = _source_features(resolved, schema)
    parsed, deps = _parse_derived(resolved["derived"], schema, window_names={
        w["name"] for w in resolved["windows"]})
    pre, post = _split_row_level(_order_derived(resolved["derived"], deps), deps, schema)

    frame_schema = dict(schema)  # grows as features are added: later ones type-check against it
    row_exprs += _derived_exprs(pre, parsed, frame_schema)
    windows, window_features = _window_features(resolved["windows"], frame_schema)
    features += window_features
    features += [Feature(d["name"], d["kind"], "derived") for d in pre]
    post_exprs = _derived_exprs(post, parsed, frame_schema)
    features += [Feature(d["name"], d["kind"], "derived") for d in post]
    # features keep the declaration order of the spec within each source kind
    order = resolved["raw"] + resolved["categorical"] + [w["name"] for w in resolved["windows"]] \
        + [d["name"] for d in resolved["derived"]]
    features.sort(key=lambda f: order.index(f.name))

    _check_leakage(resolved, deps, windows)
    return FeaturePlan(
        name=resolved["name"], version=resolved["version"], entity=resolved["entity"],
        timestamp=resolved["timestamp"], label=resolved["label"], features=tuple(features),
        row_exprs=tuple(row_exprs), windows=tuple(windows), post_exprs=tuple(post_exprs),
        source_columns=_source_columns(resolved, schema, deps, windows),
        spec_hash=plan_hash(resolved), resolved=resolved)


def _is_numeric(dtype: pl.DataType) -> bool:
    # dtypes compare equal to their class (pl.Float64) or are parametrised instances (Decimal)
    return dtype in _NUMERIC or isinstance(dtype, _NUMERIC)


def _check_entity_and_time(resolved: dict, schema: dict) -> None:
    """The entity and timestamp columns exist, and the timestamp is a datetime."""
    entity, ts = resolved["entity"], resolved["timestamp"]
    for col, key in ((entity, "features.entity"), (ts, "features.timestamp")):
        if col not in schema:
            raise _unknown_column(col, list(schema), key)
    if not schema[ts].is_temporal():
        raise FeatureSpecError(f'timestamp column "{ts}" must be a datetime; got {schema[ts]}',
                               key="features.timestamp", fix="parse it as a datetime in the source")


def _source_features(resolved: dict, schema: dict) -> tuple[list[tuple[str, pl.Expr]], list[Feature]]:
    """Row expressions and features of the raw (numeric) and categorical source columns."""
    known = list(schema)
    row_exprs: list[tuple[str, pl.Expr]] = []
    features: list[Feature] = []
    for i, col in enumerate(resolved["raw"]):
        if col not in schema:
            raise _unknown_column(col, known, f"features.raw[{i}]")
        if not _is_numeric(schema[col]):
            raise FeatureSpecError(f'raw feature "{col}" must be numeric; got {schema[col]}',
                                   key=f"features.raw[{i}]", fix="list it under `categorical`")
        row_exprs.append((col, pl.col(col).cast(pl.Float64)))
        features.append(Feature(col, "numeric", "raw"))
    for i, col in enumerate(resolved["categorical"]):
        if col not in schema:
            raise _unknown_column(col, known, f"features.categorical[{i}]")
        row_exprs.append((col, pl.col(col).cast(pl.String).fill_null(MISSING_CATEGORY)))
        features.append(Feature(col, "categorical", "categorical"))
    return row_exprs, features


def _parse_derived(derived: list[dict], schema: dict, *, window_names: set[str]
                   ) -> tuple[dict[str, pl.Expr], dict[str, set[str]]]:
    """Parse each derived SQL expression; return name -> expr and name -> the names it reads.

    Every name read must be a source column, a window feature or another derived feature.
    """
    derived_names = {d["name"] for d in derived}
    parsed, deps = {}, {}
    for d in derived:
        expr = _sql(d["expr"], d["key"])
        roots = set(expr.meta.root_names())
        for r in sorted(roots):
            if r not in schema and r not in window_names and r not in derived_names:
                raise _unknown_column(r, list(schema) + sorted(window_names | derived_names),
                                      f"{d['key']}.expr")
        parsed[d["name"]], deps[d["name"]] = expr, roots
    return parsed, deps


def _split_row_level(ordered: list[dict], deps: dict[str, set[str]], schema: dict
                     ) -> tuple[list[dict], list[dict]]:
    """Split dependency-ordered derived features into (row-level, after windows).

    A derived feature is row-level (computed before windows, usable as a window column)
    when nothing it depends on, transitively, is a window feature.
    """
    row_level: set[str] = set()
    for d in ordered:
        if all(r in schema or r in row_level for r in deps[d["name"]]):
            row_level.add(d["name"])
    return ([d for d in ordered if d["name"] in row_level],
            [d for d in ordered if d["name"] not in row_level])


def _derived_exprs(derived: list[dict], parsed: dict[str, pl.Expr], frame_schema: dict
                   ) -> list[tuple[str, pl.Expr]]:
    """Type-check and finish each derived expression, adding its output to ``frame_schema``."""
    out = []
    for d in derived:
        frame_schema[d["name"]] = _check_dtype(parsed[d["name"]], frame_schema, d)
        out.append((d["name"], _finish(parsed[d["name"]], d["kind"])))
    return out


def _window_features(entries: list[dict], frame_schema: dict
                     ) -> tuple[list[WindowFeature], list[Feature]]:
    """Check each resolved window entry against ``frame_schema`` (which it extends)."""
    windows, features = [], []
    for w in entries:
        col = w["column"]
        if col is not None and col not in frame_schema:
            raise _unknown_column(col, list(frame_schema), f"{w['key']}.column")
        if w["agg"] not in ("count", "distinct", "last", "since_last") and col is not None \
                and not _is_numeric(frame_schema[col]):
            raise FeatureSpecError(f'aggregation {w["agg"]!r} needs a numeric column; "{col}" is '
                                   f"{frame_schema[col]}", key=f"{w['key']}.aggs",
                                   fix="use count, distinct or last for non-numeric columns")
        windows.append(WindowFeature(w["name"], col, w["agg"], w["period"], w["seconds"],
                                     w["default"]))
        frame_schema[w["name"]] = pl.Float64
        # the last value of a string column is a category; every other aggregate a number
        kind = "categorical" if w["agg"] == "last" and col is not None and \
            frame_schema[col] == pl.String else "numeric"
        features.append(Feature(w["name"], kind, "window"))
    return windows, features


def _source_columns(resolved: dict, schema: dict, deps: dict[str, set[str]],
                    windows: list[WindowFeature]) -> tuple[str, ...]:
    """The source columns the plan reads, in source order (the reader selects only these)."""
    needed = {resolved["entity"], resolved["timestamp"], *resolved["raw"], *resolved["categorical"]}
    needed |= {r for roots in deps.values() for r in roots if r in schema}
    needed |= {w.column for w in windows if w.column in schema}
    return tuple(c for c in schema if c in needed)


def _check_leakage(resolved: dict, deps: dict[str, set[str]], windows: list) -> None:
    """A feature that reads the label or its availability time, directly or through
    other features, would let the model see the answer: a compile error naming it."""
    label = resolved["label"]
    tainted = {c for c in (label.get("column"), label.get("available_at")) if c}
    if not tainted:
        return
    reads = {c: f"features.raw[{i}]" for i, c in enumerate(resolved["raw"])}
    reads.update({c: f"features.categorical[{i}]" for i, c in enumerate(resolved["categorical"])})
    for name in sorted(tainted & set(reads)):
        raise FeatureSpecError(f'feature "{name}" is the label (or its availability time): '
                               "the model would see the answer", key=reads[name],
                               fix="remove it from the features")
    source = {d["name"]: d for d in resolved["derived"]}
    window_keys = {w["name"]: w.get("key", "features.windows") for w in resolved["windows"]}
    bad: dict[str, str] = {}
    changed = True
    while changed:  # propagate through derived features and windows to a fixed point
        changed = False
        for w in windows:
            if w.column in tainted | set(bad) and w.name not in bad:
                bad[w.name] = w.column
                changed = True
        for name, roots in deps.items():
            hit = sorted(roots & (tainted | set(bad)))
            if hit and name not in bad:
                bad[name] = hit[0]
                changed = True
    for name in [d["name"] for d in resolved["derived"]] + [w.name for w in windows]:
        if name in bad:
            key = source[name]["key"] + ".expr" if name in source else window_keys[name]
            raise FeatureSpecError(
                f'feature "{name}" reads "{bad[name]}", which is (or is derived from) the label '
                f'"{label.get("column")}" or its availability time: the model would see the answer',
                key=key, fix=f'remove "{name}" or rewrite it without the label')


def _finish(expr: pl.Expr, kind: str) -> pl.Expr:
    return expr.cast(pl.String).fill_null(MISSING_CATEGORY) if kind == "categorical" \
        else expr.cast(pl.Float64)


def _check_dtype(expr: pl.Expr, schema: dict, d: dict) -> pl.DataType:
    """Type-check on an empty frame so errors surface at compile time, not mid-run."""
    try:
        out = pl.LazyFrame(schema=schema).select(expr.alias("__x")).collect_schema()["__x"]
    except Exception as exc:
        raise FeatureSpecError(f"expression {d['expr']!r} does not evaluate: "
                               f"{str(exc).splitlines()[0]}", key=f"{d['key']}.expr",
                               fix="check the column types used in the expression") from None
    if d["kind"] == "numeric" and not _is_numeric(out):
        raise FeatureSpecError(f"expression {d['expr']!r} gives {out}, not a number",
                               key=f"{d['key']}.expr", fix="set kind: categorical or fix it")
    return pl.String if d["kind"] == "categorical" else pl.Float64
