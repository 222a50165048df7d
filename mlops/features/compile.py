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
    >>> plan = compile_plan({"name": "demo", "entity": "user_id", "timestamp": "event_ts",
    ...     "raw": ["amount"], "windows": [{"column": "amount", "aggs": ["mean"], "periods": ["1d"]}],
    ...     "derived": [{"name": "ratio", "expr": "amount / (amount_mean_1d + 1)"}]}, schema)
    >>> plan.feature_names
    ['amount', 'amount_mean_1d', 'ratio']
"""
from __future__ import annotations

import difflib
from dataclasses import replace

import polars as pl
from polars.exceptions import PanicException

from mlops.errors import FeatureSpecError
from mlops.features.aggregates import AGGREGATES
from mlops.features.backends.rows import compile_row_steps
from mlops.features.plan import (
    MISSING_CATEGORY,
    PLAN_FORMAT,
    DerivedFeature,
    Feature,
    FeaturePlan,
    WindowFeature,
    plan_hash,
)
from mlops.features.rules import EventRules
from mlops.features.spec import FeatureSpec, LabelSpec, parse_spec, resolve
from mlops.features.sql_guard import RESERVED, parse_sql
from mlops.features.sql_tree import Node, columns, render_sql

__all__ = ["MISSING_CATEGORY", "PLAN_FORMAT", "DerivedFeature", "Feature", "FeaturePlan",
           "WindowFeature", "compile_plan", "plan_hash"]
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64,
            pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Boolean, pl.Decimal)


def _unknown_column(col: str, known: list[str], key: str) -> FeatureSpecError:
    close = difflib.get_close_matches(col, known, n=1)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    return FeatureSpecError(f'unable to find column "{col}"; valid columns: {sorted(known)}.{hint}',
                            key=key, fix="fix the name or add the column to the source")


def _polars_expr(d: dict, tree: Node) -> tuple[str, pl.Expr]:
    """The canonical SQL of ``tree`` and polars' expression for it. A polars panic (a
    ``BaseException``, not an ``Exception``) is reported like any other failure."""
    text = render_sql(tree, reserved=RESERVED, for_polars=True)
    try:
        return text, pl.sql_expr(text)
    except (Exception, PanicException) as exc:  # polars raises several types, or panics
        raise _polars_error(d, "is not valid SQL for polars", exc) from None


def _polars_error(d: dict, what: str, exc: BaseException) -> FeatureSpecError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return FeatureSpecError(f'feature "{d["name"]}": expression {d["expr"][:120]!r} {what}: {first}',
                            key=f"{d['key']}.expr",
                            fix="write a SQL expression such as 'x / (y + 1)'; use ln(), log10() or "
                                "log1p() for logarithms and check the column types")


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
    _check_columns(resolved, schema)
    row_exprs, features = _source_features(resolved, schema)
    trees, deps = _parse_derived(resolved["derived"], schema, window_names={
        w["name"] for w in resolved["windows"]})
    pre, post = _split_row_level(_order_derived(resolved["derived"], deps), deps, schema)

    # what each expression sees: row-level ones the source columns, later ones the raw
    # features as Float64 and the categorical ones as String; each feature is added as
    # it is defined (later ones type-check against it)
    frame_schema = dict(schema)
    pairs = _derived_features(pre, trees, frame_schema, after_windows=False)
    frame_schema.update({**dict.fromkeys(resolved["raw"], pl.Float64),
                         **dict.fromkeys(resolved["categorical"], pl.String)})
    windows, window_features = _window_features(resolved["windows"], frame_schema)
    pairs += _derived_features(post, trees, frame_schema, after_windows=True)
    derived = [d for d, _ in pairs]
    features += window_features + [Feature(d.name, d.kind, "derived") for d in derived]
    # features keep the declaration order of the spec within each source kind
    order = resolved["raw"] + resolved["categorical"] + [w["name"] for w in resolved["windows"]] \
        + [d["name"] for d in resolved["derived"]]
    features.sort(key=lambda f: order.index(f.name))

    _check_leakage(resolved, deps, windows)
    source = _source_columns(resolved, schema, deps, windows)
    exprs = {d.name: expr for d, expr in pairs}
    plan = FeaturePlan(
        name=resolved["name"], version=resolved["version"], entity=resolved["entity"],
        timestamp=resolved["timestamp"], label=LabelSpec(**resolved["label"]), features=tuple(features),
        row_exprs=tuple(row_exprs + [(d.name, exprs[d.name]) for d in derived if not d.after_windows]),
        windows=tuple(windows),
        post_exprs=tuple((d.name, exprs[d.name]) for d in derived if d.after_windows),
        source_columns=source, spec_hash=plan_hash(resolved), resolved=resolved,
        derived=tuple(derived),
        rules=EventRules.from_resolved(resolved), schema={c: schema[c] for c in source})
    return _with_backends(plan, frame_schema)


def _with_backends(plan: FeaturePlan, frame_schema: dict) -> FeaturePlan:
    """The plan plus the backends that can evaluate it: frames always; rows when every
    derived expression has an exact row form (else the plan keeps the frame path)."""
    steps = compile_row_steps(plan, frame_schema)
    return replace(plan, backends=("frames", "rows") if steps is not None else ("frames",),
                   row_steps=steps)


def _is_numeric(dtype: pl.DataType) -> bool:
    # dtypes compare equal to their class (pl.Float64) or are parametrised instances (Decimal)
    return dtype in _NUMERIC or isinstance(dtype, _NUMERIC)


def _check_columns(resolved: dict, schema: dict) -> None:
    """The entity, timestamp and event id columns exist, and the timestamp is a datetime."""
    entity, ts, eid = resolved["entity"], resolved["timestamp"], resolved.get("event_id")
    for col, key in ((entity, "features.entity"), (ts, "features.timestamp"),
                     (eid, "features.event_id")):
        if col is not None and col not in schema:
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
                   ) -> tuple[dict[str, Node], dict[str, set[str]]]:
    """Parse each derived SQL expression; return name -> tree and name -> the names it reads.

    Every name read must be a source column, a window feature or another derived feature.
    """
    derived_names = {d["name"] for d in derived}
    trees, deps = {}, {}
    for d in derived:
        tree = parse_sql(d["expr"], key=d["key"], name=d["name"])
        roots = set(columns(tree))
        for r in sorted(roots):
            if r not in schema and r not in window_names and r not in derived_names:
                raise _unknown_column(r, list(schema) + sorted(window_names | derived_names),
                                      f"{d['key']}.expr")
        trees[d["name"]], deps[d["name"]] = tree, roots
    return trees, deps


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


def _derived_features(derived: list[dict], trees: dict[str, Node], frame_schema: dict, *,
                      after_windows: bool) -> list[tuple[DerivedFeature, pl.Expr]]:
    """Type-check and finish each derived expression, adding its output to ``frame_schema``."""
    out = []
    for d in derived:
        sql, expr = _polars_expr(d, trees[d["name"]])
        frame_schema[d["name"]] = _check_dtype(expr, frame_schema, d)
        out.append((DerivedFeature(d["name"], d["kind"], trees[d["name"]], sql, after_windows,
                                   d["key"]), _finish(expr, d["kind"])))
    return out


def _window_features(entries: list[dict], frame_schema: dict
                     ) -> tuple[list[WindowFeature], list[Feature]]:
    """Check each resolved window entry against ``frame_schema`` (which it extends)."""
    windows, features = [], []
    for w in entries:
        col = w["column"]
        if col is not None and col not in frame_schema:
            raise _unknown_column(col, list(frame_schema), f"{w['key']}.column")
        if col is not None and w["default"] is not None and not AGGREGATES[w["agg"]].empty_zero \
                and not _is_numeric(frame_schema[col]):
            raise FeatureSpecError(f'a default for {w["agg"]!r} of "{col}" ({frame_schema[col]}) '
                                   "would mix a number into its values", key=f"{w['key']}.default",
                                   fix="drop `default` (an empty window gives null)")
        if AGGREGATES[w["agg"]].numeric_only and not _is_numeric(frame_schema[col]):
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
    needed |= {resolved["event_id"]} if resolved.get("event_id") else set()
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
    except (Exception, PanicException) as exc:
        raise _polars_error(d, "does not evaluate", exc) from None
    if d["kind"] == "numeric" and not _is_numeric(out):
        raise FeatureSpecError(f'feature "{d["name"]}": expression {d["expr"]!r} gives {out}, not a number',
                               key=f"{d['key']}.expr", fix="set kind: categorical or fix it")
    return pl.String if d["kind"] == "categorical" else pl.Float64
