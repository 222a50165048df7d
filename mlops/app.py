"""The application: validate the composed config, dispatch on ``action``, record the run.

``run.py`` is a thin Hydra entry point around :func:`run`; tests call :func:`run`
directly with a config from Hydra's compose API.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path

from omegaconf import DictConfig

from mlops.actions.context import RunContext
from mlops.config.validate import check_action
from mlops.errors import MlopsError
from mlops.reports.render import write_json

# action name -> module in mlops.actions (imported lazily: serving pulls in FastAPI)
MODULES = {
    "features": "features", "train": "train", "promote": "registry_ops", "approve": "registry_ops",
    "rollback": "registry_ops", "registry": "registry_ops", "score": "serving_ops",
    "serve": "serving_ops", "materialize": "serving_ops", "parity": "serving_ops",
    "score_merge": "serving_ops", "replay": "replay", "monitor": "monitor", "analyze": "analyze",
    "plan": "analyze", "lifecycle": "lifecycle", "drift": "drift",
    "consistency": "consistency",
    "keygen": "registry_trust", "verify": "registry_trust", "gc": "registry_trust",
    "features_merge": "features_merge",
}


def _hydra_info() -> tuple[list[str], bool]:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        hc = HydraConfig.get()
        return list(hc.overrides.task), hc.mode == RunMode.MULTIRUN
    except Exception:  # compose mode (tests): no HydraConfig
        return [], False


def execute(cfg: DictConfig) -> tuple[int, float | None]:
    """Run the configured action; return (exit code, objective value)."""
    overrides, multirun = _hydra_info()
    started = time.perf_counter()
    record = {"action": str(cfg.get("action")), "status": "ok", "error": None,
              "overrides": overrides, "metrics": {}, "objective": None, "registry": None,
              "report": None}
    ctx = None
    code, objective = 0, None
    try:
        action = check_action(cfg)
        ctx = RunContext.from_config(cfg, overrides=overrides, multirun=multirun)
        module = importlib.import_module(f"mlops.actions.{MODULES[action]}")
        takes_action = len(inspect.signature(module.run).parameters) == 2
        res = module.run(ctx, action) if takes_action else module.run(ctx)
        code = res.exit_code
        report = res.report or f"{action}.html"
        record.update(metrics=res.metrics, objective=res.objective, registry=res.registry,
                      report=report if (ctx.output_dir / report).exists() else None)
        if res.objective:
            objective = res.objective.get("value")
        if (ctx.output_dir / report).exists():
            print(f"report: {ctx.output_dir / report}")
    except MlopsError as exc:
        record.update(status="failed", error=str(exc))
        code = exc.exit_code
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exc()
    except Exception as exc:  # a bug: keep the traceback, but do not lose the sweep record
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        code = 1
        if not multirun:
            _write_record(ctx, cfg, record, started)
            raise
        traceback.print_exc()
    _write_record(ctx, cfg, record, started)
    return code, objective


def _write_record(ctx, cfg, record, started) -> None:
    record["duration_s"] = round(time.perf_counter() - started, 3)
    out = ctx.output_dir if ctx else Path(str(cfg.paths.output_dir))
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_json(record, out / "result.json")
    except OSError:
        pass


def run(cfg: DictConfig) -> float | None:
    """Entry point for ``run.py``: exits non-zero on failure in single runs.

    In multirun a failed job records ``status: failed`` in its result.json and
    returns, so the sweep goes on and the sweep report lists it.
    """
    code, objective = execute(cfg)
    _, multirun = _hydra_info()
    if code and not multirun:
        sys.exit(code)
    if code and objective is None:  # a failed sweep job: Optuna records NaN as a failed trial
        return float("nan")
    return objective
