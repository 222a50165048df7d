"""The one dispatch table (``action=`` -> entry point) and the step runner.

Every entry point has the same signature, ``fn(ctx: RunContext) -> ActionResult``.
Modules are imported lazily, by name, because serving pulls in FastAPI. Both the
config check (unknown action, did-you-mean) and :func:`run_step` read this table;
:mod:`mlops.app` and the lifecycle (through ``RunContext.run_step``) run actions only here.
"""
from __future__ import annotations

import difflib
import importlib
import os
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from mlops.errors import ConfigError, DiskFullError, MlopsError
from mlops.filesystem import disk_full_detail
from mlops.registry.redact import redact, redact_overrides, redact_text
from mlops.reports.jsonio import write_json

if TYPE_CHECKING:  # the run's modules load in run_step: `mlops --help` reads ACTIONS alone
    from omegaconf import DictConfig

    from mlops.actions.context import RunContext
    from mlops.actions.outputs import ActionResult

# action name -> "module:function" in mlops.actions
ACTIONS: dict[str, str] = {
    "lifecycle": "lifecycle:run",
    "features": "features:run", "features_merge": "features_merge:run", "train": "train:run",
    "keygen": "registry_trust:keygen", "verify": "registry_trust:verify",
    "gc": "registry_trust:gc", "migrate": "registry_trust:migrate",
    "approve": "registry_ops:approve", "promote": "registry_ops:promote",
    "rollback": "registry_ops:rollback", "registry": "registry_ops:show",
    "breaker_reset": "breaker_reset:run",
    "score": "score:run", "score_merge": "score_merge:run", "serve": "serve:run",
    "materialize": "materialize:run", "parity": "parity:run", "replay": "replay:run",
    "monitor": "monitor:run", "drift": "drift:run", "consistency": "consistency:run",
    "analyze": "analyze:run", "plan": "analyze:run",
}

Entry = Callable[["RunContext"], "ActionResult"]


def check_action(action: str) -> str:
    """``action`` itself when it is in the table; else a ConfigError with a did-you-mean."""
    if action not in ACTIONS:
        close = difflib.get_close_matches(action, list(ACTIONS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown action {action!r}; valid: {sorted(ACTIONS)}.{hint}",
                          key="action", fix="pass e.g. action=features")
    return action


def entry_point(action: str) -> Entry:
    """The function that runs ``action`` (imported on first use)."""
    module, function = ACTIONS[check_action(action)].split(":")
    return getattr(importlib.import_module(f"mlops.actions.{module}"), function)


def run_step(cfg: DictConfig, *, overrides=(), multirun: bool = False
             ) -> tuple[int, ActionResult | None]:
    """Run the action ``cfg.action`` names; write ``result.json``; return (exit code, result).

    A user error (MlopsError, or a full disk anywhere) is one line on stderr, its exit
    code, and a result whose ``status`` is ``fail`` and ``headline`` the error (secrets
    redacted). A bug keeps its traceback:
    re-raised in a single run, printed in a multirun (so the sweep goes on and its
    report lists the failed job).
    """
    from mlops.actions.context import RunContext
    started = time.perf_counter()
    record = {"action": str(cfg.action), "status": "ok", "error": None,
              "overrides": redact_overrides(overrides), "metrics": {}, "objective": None,
              "registry": None, "report": None}
    ctx, res, code = None, None, 0
    try:
        action = check_action(str(cfg.action))
        ctx = RunContext.from_config(cfg, overrides=overrides, multirun=multirun,
                                     action=action)
        ctx.run_step = partial(run_step, overrides=overrides, multirun=multirun)
        res = entry_point(action)(ctx)
        code = res.exit_code
        _record_result(ctx, record, res)
    except Exception as exc:
        error = exc if isinstance(exc, MlopsError) else disk_full(exc, ctx, cfg)
        if error is None:  # a bug: keep the traceback, but do not lose the sweep record
            record.update(status="failed", error=redact_text(f"{type(exc).__name__}: {exc}"))
            code = 1
            if not multirun:
                _write_record(ctx, cfg, record, started)
                raise
            traceback.print_exc()
        else:
            code, res = _user_error(ctx.explain(error) if ctx is not None else error, record)
    _write_record(ctx, cfg, record, started)
    return code, res


def disk_full(exc: BaseException, ctx: RunContext | None, cfg: DictConfig) -> DiskFullError | None:
    """A full disk that no writer named yet, as DiskFullError (the file if the error
    says, else where this run writes); None for anything else."""
    detail = disk_full_detail(exc)
    if detail is None:
        return None
    where = getattr(exc, "filename", None)
    if where is None:
        out = ctx.output_dir if ctx else cfg.paths.output_dir
        where = f"the files of this run (under {out}" + (f" or {ctx.home})" if ctx else ")")
    return DiskFullError(where, detail)


def _user_error(error: MlopsError, record: dict) -> tuple[int, ActionResult]:
    """One line on stderr (no secrets), the failed record and result, the exit code."""
    from mlops.actions.outputs import ActionResult
    text = redact_text(str(error))
    record.update(status="failed", error=text)
    print(f"error: {text}", file=sys.stderr)
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        traceback.print_exc()
    return error.exit_code, ActionResult(result={"status": "fail", "headline": text},
                                         exit_code=error.exit_code)


def _record_result(ctx: RunContext, record: dict, res: ActionResult) -> None:
    report = res.report or f"{ctx.action}.html"
    written = (ctx.output_dir / report).exists()
    record.update(metrics=res.metrics, objective=res.objective, registry=res.registry,
                  report=report if written else None)
    if written:
        print(f"report: {ctx.output_dir / report}")


def _write_record(ctx, cfg, record, started) -> None:
    record["duration_s"] = round(time.perf_counter() - started, 3)
    out = ctx.output_dir if ctx else Path(str(cfg.paths.output_dir))
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(redact(record), out / "result.json")
    except (OSError, MlopsError):  # a full disk was reported already; the record is a bonus
        pass
