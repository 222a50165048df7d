"""What an experiment run reads besides its spec: the weights guard, each variant's model
from the registry, and outcomes given as a file (per-unit rows or sufficient statistics).

Outcomes of live traffic (simulated from the events or read from the prediction log) are
:mod:`mlops.experiments.simulation`; the statistics are :mod:`mlops.experiments.outcome_stats`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops.data.files import scan_files
from mlops.errors import ConfigError, ExperimentError
from mlops.experiments.outcome_stats import sufficient_stats_table, unit_stats
from mlops.experiments.spec import ExperimentSpec, check_weights_unchanged
from mlops.home import private_dir, private_file

KEY = "experiment.outcomes"


@dataclass
class Outcomes:
    """Sufficient statistics of an experiment, per period, its age, and where they came from."""

    stats: dict
    per_period: dict | None
    days: float | None
    info: dict


def guard_weights(state_dir: Path, spec: ExperimentSpec) -> dict:
    """Refuse re-weighting under the same seed; remember the first (seed, weights) seen
    (``state_dir/<key>.json``)."""
    path = Path(state_dir) / f"{spec.key}.json"
    if path.exists():
        check_weights_unchanged(json.loads(path.read_text()), spec)
        return {"state": str(path), "first_run": False}
    private_dir(path.parent)
    private_file(path).write_text(json.dumps(spec.assignment_state(), indent=2))
    return {"state": str(path), "first_run": True}


def variant_models(registry: Any, spec: ExperimentSpec, *, model_name: str,
                   trusted: list[str]) -> dict[str, tuple]:
    """variant name -> (model, ModelVersion); a variant's ``model`` is an alias, ``3``,
    ``v3`` or ``name@alias`` (``model_name`` when no name is given)."""
    out = {}
    for v in spec.variants:
        ref = str(v.model)
        name, _, target = ref.rpartition("@") if "@" in ref else (model_name, "", ref)
        target = target[1:] if target[:1] == "v" and target[1:].isdigit() else target
        try:
            out[v.name] = registry.load_model(name, int(target) if target.isdigit() else target,
                                              trusted)
        except Exception as exc:
            if not hasattr(exc, "exit_code"):
                raise
            raise ExperimentError(f"variant {v.name!r} names model {ref!r}: {exc}",
                                  key="experiment.variants",
                                  fix="point it at an existing version or alias") from None
    return out


def check_unit(unit: str, schema: dict) -> None:
    """The randomisation unit must be a column of the data."""
    if unit not in schema:
        raise ExperimentError(f"unit column {unit!r} is not in the data; columns: "
                              f"{list(schema)[:12]}", key="experiment.unit",
                              fix="name the column that identifies a unit (a user, a shop...)")


def file_outcomes(spec: ExperimentSpec, *, source: str, path: str | None, variant_col: str,
                  period_col: str | None, days: float | None) -> Outcomes:
    """Statistics from a file: per-unit rows (``units``) or sufficient statistics
    (``sufficient``), ``days`` the experiment ran."""
    if source not in ("units", "sufficient"):
        raise ConfigError(f"must be simulate, prediction_log, units or sufficient; got "
                          f"{source!r}", key=f"{KEY}.source")
    if not path:
        raise ConfigError(f"outcomes.source={source} needs a path", key=f"{KEY}.path",
                          fix="pass experiment.outcomes.path=<parquet/csv glob>")
    df = scan_files(path, key=f"{KEY}.path").collect()
    if variant_col not in df.columns:
        raise ExperimentError(f"column {variant_col!r} not in the outcomes; columns: {df.columns}",
                              key=f"{KEY}.variant_col")
    info = {"source": source, "path": path, "rows": df.height}
    if source == "units":
        stats, per_period = unit_stats(df, df, spec, variant_col=variant_col, period_col=period_col)
        return Outcomes(stats, per_period, days, info)
    return Outcomes(sufficient_stats_table(df, variant_col=variant_col), None, days, info)
