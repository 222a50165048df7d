"""The application: validate the composed config, dispatch on ``action``, record the run.

``run.py`` is a thin Hydra entry point around :func:`run`; tests call :func:`run`
directly with a config from Hydra's compose API.
"""
from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from mlops.actions.dispatch import run_step
from mlops.registry.redact import redact_yaml_file


def _hydra_info() -> tuple[list[str], bool]:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
        hc = HydraConfig.get()
        return list(hc.overrides.task), hc.mode == RunMode.MULTIRUN
    except Exception:  # compose mode (tests): no HydraConfig
        return [], False


def redact_hydra_files() -> None:
    """Hydra saved the composed config and the overrides (``.hydra/*.yaml``) before the run
    started: rewrite them without secrets (admin tokens, passwords, URL passwords)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        hc = HydraConfig.get()
    except Exception:  # compose mode (tests): Hydra wrote nothing
        return
    if not hc.output_subdir:
        return
    for path in (Path(hc.runtime.output_dir) / hc.output_subdir).glob("*.yaml"):
        redact_yaml_file(path)


def execute(cfg: DictConfig) -> tuple[int, float | None]:
    """Run the configured action; return (exit code, objective value)."""
    overrides, multirun = _hydra_info()
    code, res = run_step(cfg, overrides=overrides, multirun=multirun)
    objective = res.objective.get("value") if res is not None and res.objective else None
    return code, objective


def run(cfg: DictConfig) -> float | None:
    """Entry point for ``run.py``: exits non-zero on failure in single runs.

    In multirun a failed job records ``status: failed`` in its result.json and
    returns, so the sweep goes on and the sweep report lists it.
    """
    redact_hydra_files()
    code, objective = execute(cfg)
    _, multirun = _hydra_info()
    if code and not multirun:
        sys.exit(code)
    if code and objective is None:  # a failed sweep job: Optuna records NaN as a failed trial
        return float("nan")
    return objective
