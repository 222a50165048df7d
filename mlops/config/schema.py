"""Structured-config schemas: one dataclass per config group.

Registered in Hydra's ConfigStore by :func:`mlops.config.store.register`; every
YAML file under ``conf/`` names its schema in its defaults list, so an unknown
key or a wrong type fails at compose time naming the key. Range checks that a
type cannot express live in :mod:`mlops.config.validate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from mlops.features.spec import FeatureGroupSpec, FeatureSpec


@dataclass
class SyntheticDataConfig:
    """``conf/data/synthetic*.yaml``: the embedded generator (see mlops.data.synthetic)."""

    source: str = "synthetic"
    n_users: int = 2000
    days: int = 120
    start: str = "2024-01-01"
    seed: int = 7
    tx_per_user_day: float = 0.35
    fraud_rate: float = 0.015
    label_delay_days: float = 5.0
    scenario: str = "none"
    drift_start: float = 60.0
    magnitude: float = 1.0
    ramp_days: float = 20.0
    period_days: float = 14.0


@dataclass
class FileDataConfig:
    """``conf/data/files.yaml``: parquet/csv files (globs), scanned lazily."""

    source: str = "files"
    path: str = "???"
    format: str = "auto"             # auto | parquet | csv
    columns: dict[str, str] = field(default_factory=dict)   # source name -> our name
    timestamp_format: Optional[str] = None                  # strptime format for csv strings
    labels_path: Optional[str] = None                       # optional separate label table


@dataclass
class PathsConfig:
    home: str = ".mlops"
    output_dir: str = "."


@dataclass
class ReportConfig:
    html: bool = True
    max_chart_features: int = 40
    title: str = "mlops"


@dataclass
class AppConfig:
    """The primary config. Group nodes carry their own schemas."""

    action: str = "features"
    seed: int = 7
    data: Any = None
    features: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    model: Any = None
    training: Any = None
    registry: Any = None
    serving: Any = None
    monitoring: Any = None
    experiment: Any = None
    lifecycle: Any = None


SCHEMAS: dict[tuple[str | None, str], type] = {
    (None, "mlops_schema"): AppConfig,
    ("data", "synthetic_schema"): SyntheticDataConfig,
    ("data", "files_schema"): FileDataConfig,
    ("features", "feature_spec_schema"): FeatureSpec,
    ("feature_group", "feature_group_schema"): FeatureGroupSpec,
    ("paths", "paths_schema"): PathsConfig,
    ("report", "report_schema"): ReportConfig,
}
