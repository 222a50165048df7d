"""``action=serve``: the HTTP app for the model under ``serving.alias``.

The served model carries its plan: features are computed with the spec recorded with that
version (``features=`` is for training; a different one given explicitly is a SkewError
naming both hashes).
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult
from mlops.serving import serve as serve_app


def run(ctx: RunContext) -> ActionResult:
    """Serve until stopped."""
    state = ctx.serving_state()
    s = state.settings
    print(f"serving {state.info.name} v{state.info.version} ({s.mode}) on "
          f"http://{s.host}:{s.port}  (docs: /docs, metrics: /metrics)")
    serve_app(state)
    return ActionResult(result={"status": "ok", "headline": "server stopped"})
