"""How actions hand back results and write their JSON + HTML reports."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.actions.context import RunContext
from mlops.registry.redact import redact, redact_overrides
from mlops.reports.render import write_json
from mlops.reports.render import write_report as _publish


@dataclass
class ActionResult:
    """What an action returns to the dispatcher.

    ``objective`` is the value Hydra sweepers optimise (None when not meaningful);
    ``exit_code`` lets an action signal e.g. drift (3) or a parity failure (1)
    after writing its reports.
    """

    result: dict
    metrics: dict[str, float] = field(default_factory=dict)
    objective: dict | None = None
    registry: dict | None = None
    exit_code: int = 0
    report: str | None = None


def write_report(ctx: RunContext, name: str, result: dict[str, Any], *, title: str,
                 context: dict[str, Any] | None = None, template: str | None = None) -> Path:
    """Write ``<name>.json`` (+ ``<name>.html`` and the run's index) into the run directory.

    ``result`` is the machine-readable contract (it must hold ``status`` and
    ``headline``); ``context`` holds display-only values such as SVG charts.
    Secrets (token/password/secret keys, URL passwords) are redacted from both.
    """
    result, context = redact(result), redact(context)
    if not ctx.cfg.report.html:
        write_json({"action": name, "title": title, **result}, ctx.output_dir / f"{name}.json")
        return ctx.output_dir / f"{name}.json"
    _, html = _publish(ctx.output_dir, name, result, title=title, template=template,
                       context=context, run=run_info(ctx))
    return html


def run_info(ctx: RunContext) -> dict:
    """The footer's facts: where the run wrote, and its overrides without their secrets."""
    return {"output dir": str(ctx.output_dir),
            "overrides": " ".join(redact_overrides(ctx.overrides)) if ctx.overrides else None}


def facts(result: dict[str, Any], keys) -> dict[str, Any]:
    """The report's facts table: ``keys`` of ``result``, named in words."""
    return {k.replace("_", " "): result.get(k) for k in keys}
