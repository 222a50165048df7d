"""Render HTML reports from the Jinja2 templates in ``templates/`` and write JSON reports.

Everything rendered here is autoescaped (data values such as feature names, categories
and error messages are untrusted). Only ``markupsafe.Markup`` values, i.e. our own SVG
charts and macro output, pass through unescaped.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from mlops.errors import MlopsError
from mlops.package_files import TEMPLATES_DIR
from mlops.reports.display import (
    card_items,
    cell,
    duration,
    fmt,
    format_cell,
    is_highlighted,
    normalize_status,
    pct,
    table_columns,
    to_json_text,
    ts,
)
from mlops.reports.jsonio import to_jsonable, write_json, write_text_atomic

__all__ = ["TEMPLATES_DIR", "ReportError", "environment", "render_string", "render_report",
           "write_report", "write_json", "write_text_atomic", "to_jsonable"]



class ReportError(MlopsError):
    """A report could not be rendered (unknown template, undefined variable, ...)."""


_ENVS: dict[Path, jinja2.Environment] = {}


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs, in Jinja's per-user cache directory (created
    0700 under the temp dir; an entry is used only while its template's source is unchanged):
    compiling ``base.html`` and the macros costs every command ~40 ms. Not being able to
    write the cache (disk full, read-only) only means compiling again next time."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:
            pass


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return _CompiledTemplates()
    except (RuntimeError, OSError):  # no private cache directory can be made: compile each time
        return None


def environment(templates_dir: Path | None = None) -> jinja2.Environment:
    """The (cached) Jinja2 environment over ``templates_dir`` (default: the project's
    ``templates/``): autoescape on for every template, ``StrictUndefined``, our filters
    (``fmt``, ``pct``, ``ts``, ``json``, ``duration``, ``status``) and table/card helpers.
    """
    root = Path(templates_dir or TEMPLATES_DIR).resolve()
    if root not in _ENVS:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(root)),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            bytecode_cache=_bytecode_cache(),
        )
        env.filters.update(fmt=fmt, pct=pct, ts=ts, json=to_json_text, duration=duration,
                           status=normalize_status, cellfmt=format_cell)
        env.globals.update(table_columns=table_columns, cell=cell, format_cell=format_cell,
                           is_highlighted=is_highlighted, card_items=card_items)
        _ENVS[root] = env
    return _ENVS[root]


def render_string(template: str, context: Mapping[str, Any], *, title: str,
                  templates_dir: Path | None = None, index_href: str | None = None) -> str:
    """Render ``template`` (a file name under the templates dir) to an HTML string."""
    env = environment(templates_dir)
    ctx = dict(context)
    ctx["title"] = title
    ctx.setdefault("index_href", index_href)
    ctx.setdefault("generated_at", dt.datetime.now(dt.timezone.utc))
    try:
        return env.get_template(template).render(ctx)
    except jinja2.TemplateNotFound as exc:
        raise ReportError(
            f"The report template {exc.name!r} does not exist in {env.loader.searchpath}",  # type: ignore[union-attr]
            fix='create it (starting with {% extends "base.html" %}) or pass an existing name',
        ) from exc
    except jinja2.UndefinedError as exc:
        raise ReportError(
            f"Rendering {template!r} failed: {exc.message}",
            fix="pass that key in the context, or guard it with '{% if x is defined %}'",
        ) from exc


def render_report(template: str, context: Mapping[str, Any], out_path: Path, *, title: str,
                  templates_dir: Path | None = None, index_href: str | None = "auto") -> Path:
    """Render ``template`` with ``context`` into ``out_path`` (atomically); return the path.

    ``title`` is the page title. Optional context keys that ``base.html`` uses:
    ``status`` + ``headline`` (+ ``reasons``) for the verdict banner, ``cards`` for the
    summary cards, ``run`` (``id``, ``time``, ``config_hash``, ...) for the footer.
    ``index_href="auto"`` links back to ``index.html`` when it exists next to
    ``out_path``; pass another relative href, or ``None`` for no link.

    >>> render_report("train.html", {"status": "ok", "headline": "AUC 0.91 passes the gate"},
    ...               run_dir / "train.html", title="Training")  # doctest: +SKIP
    """
    out_path = Path(out_path)
    if index_href == "auto":
        index = out_path.parent / "index.html"
        index_href = "index.html" if index.exists() and index.name != out_path.name else None
    html = render_string(template, context, title=title, templates_dir=templates_dir,
                         index_href=index_href)
    return write_text_atomic(out_path, html)


def write_report(run_dir: Path, action: str, data: Mapping[str, Any], *, title: str,
                 template: str | None = None, context: Mapping[str, Any] | None = None,
                 run: Mapping[str, Any] | None = None, index_title: str | None = "Run reports",
                 reasons: Sequence[str] = (), templates_dir: Path | None = None) -> tuple[Path, Path]:
    """The usual way an action publishes its result: ``<action>.json``, ``index.html``, ``<action>.html``.

    ``data`` is the machine-readable result and must hold ``status`` (ok/warn/fail) and
    ``headline`` (the one-line answer). It is written as JSON with ``action`` and ``title``
    added, then ``template`` (default ``<action>.html``) is rendered with ``data`` +
    ``context`` (context: charts and other display-only values), then the run's
    ``index.html`` is rebuilt from every action JSON on disk (skip with ``index_title=None``).

    >>> write_report(run_dir, "monitor", {"status": "warn", "headline": "2 of 14 features drifted",
    ...              "features": rows}, title="Drift monitor", context={"psi_chart": svg})  # doctest: +SKIP
    """
    missing = [k for k in ("status", "headline") if k not in data]
    if missing:
        raise ReportError(f"The 'data' parameter of write_report must hold {missing}; "
                          f"got keys {sorted(data)} instead",
                          fix="add a status (ok/warn/fail) and a one-line headline")
    run_dir = Path(run_dir)
    payload = {"action": action, "title": title, **data}
    if reasons and "reasons" not in payload:
        payload["reasons"] = list(reasons)
    if run:
        payload.setdefault("run", dict(run))
    json_path = write_json(payload, run_dir / f"{action}.json")
    ctx = {**payload, **(context or {})}
    html_path = render_report(template or f"{action}.html", ctx, run_dir / f"{action}.html",
                              title=title, templates_dir=templates_dir,
                              index_href="index.html" if index_title is not None else "auto")
    if index_title is not None:
        from mlops.reports.index import collect_entries, write_index  # index imports this module

        write_index(run_dir, collect_entries(run_dir), title=index_title,
                    templates_dir=templates_dir, run=run)
    return json_path, html_path
