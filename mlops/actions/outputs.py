"""How actions hand back results and write their JSON + HTML reports."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.actions.context import RunContext
from mlops.reports.render import render_report, write_json


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
                 template: str | None = None) -> Path:
    """Write ``<name>.json`` and ``<name>.html`` into the run directory; return the HTML path."""
    write_json(result, ctx.output_dir / f"{name}.json")
    html = ctx.output_dir / f"{name}.html"
    if ctx.cfg.report.html:
        render_report(template or f"{name}.html", {"r": result, "run": run_info(ctx)}, html,
                      title=title)
    return html


def run_info(ctx: RunContext) -> dict:
    return {"output_dir": str(ctx.output_dir), "overrides": ctx.overrides,
            "action": str(ctx.cfg.action)}
