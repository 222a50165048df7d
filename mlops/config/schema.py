"""Structured-config schemas: one dataclass per config group.

Registered in Hydra's ConfigStore by :func:`mlops.config.store.register`; every
YAML file under ``conf/`` names its schema in its defaults list, so an unknown
key or a wrong type fails at compose time naming the key. Where the engine has settings
for a group, they are its schema (``training``: :class:`TrainingSettings`, ``monitoring``:
:class:`MonitoringSettings`, ``registry``: :class:`RegistrySettings`, ``serving``:
:class:`ServingSettings` plus the actions' keys); each checks its declared constraints when
built (:class:`mlops.constraints.Constrained`), so a bad value fails before any work starts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Optional, Union

from mlops.constraints import Constrained, Options
from mlops.data.synthetic import SyntheticParams
from mlops.errors import ConfigError
from mlops.experiments.outcomes import OutcomeSpec
from mlops.experiments.simulation import SimulationSettings
from mlops.experiments.spec import ExperimentSpec
from mlops.features.spec import FeatureGroupSpec, FeatureSpec
from mlops.monitoring.settings import MonitoringSettings
from mlops.registry.settings import RegistrySettings
from mlops.serving.settings import ServingSettings
from mlops.training.settings import ModelSettings, TrainingSettings


@dataclass
class LabelsConfig(Constrained):
    """``data.labels``: labels in their own table (parquet/csv glob), joined point-in-time."""

    path: Optional[str] = None           # null = labels are a column of the events
    format: str = "auto"                 # auto | parquet | csv
    columns: dict[str, str] = field(default_factory=dict)   # source name -> our name
    by: str = "event_id"                 # event_id (one label per event) | entity (label spine)
    timestamp_format: Optional[str] = None

    KEY: ClassVar[str] = "labels"
    CONSTRAINTS: ClassVar[dict] = {"by": [Options("event_id", "entity")]}


@dataclass
class DataConfig:
    """What every data source declares: its kind, the event id, separate labels, dedupe."""

    source: str = "???"                   # synthetic | files
    event_id: Optional[str] = None        # unique id per event (joins late labels/outcomes); null = none
    labels: LabelsConfig = field(default_factory=LabelsConfig)  # labels in a separate table
    dedupe: bool = False                  # drop exact duplicate rows (same event id twice = error)


@dataclass
class SyntheticDataConfig(DataConfig, SyntheticParams):
    """``conf/data/synthetic*.yaml``: the embedded generator (see mlops.data.synthetic)."""

    source: str = "synthetic"

    def __post_init__(self) -> None:
        self.validate(prefix="data")


@dataclass
class FileDataConfig(DataConfig):
    """``conf/data/files.yaml``: parquet/csv files (globs), scanned lazily."""

    source: str = "files"
    path: Optional[str] = None         # required: a glob of parquet/csv files
    format: str = "auto"             # auto | parquet | csv
    columns: dict[str, str] = field(default_factory=dict)   # source name -> our name
    timestamp_format: Optional[str] = None                  # strptime format for csv strings


@dataclass
class PathsConfig:
    home: str = ".mlops"
    output_dir: str = "."


@dataclass
class ReportConfig(Constrained):
    html: bool = True
    max_chart_features: int = 40
    title: str = "mlops"
    class_names: Optional[list[str]] = None   # [negative, positive] wording; null = negative/positive

    def check(self) -> None:
        if self.class_names is not None and len(self.class_names) != 2:
            raise ConfigError(f"must name the two classes [negative, positive]; got "
                              f"{list(self.class_names)}", key="report.class_names",
                              fix="e.g. report.class_names=[legit,fraud] or null")


@dataclass
class OutcomesConfig:
    """``experiment.outcomes``: where the per-unit outcomes come from and what they are."""

    source: str = "simulate"              # simulate | prediction_log | units | sufficient
    path: Optional[str] = None            # units/sufficient: parquet/csv glob
    variant_col: str = "variant"
    period_col: Optional[str] = "day"     # per-period rows for the novelty check
    # simulate / prediction_log: name -> {expr: SQL over a served row (source columns,
    # score, decision), agg: sum|mean|count|min|max}
    metrics: dict[str, Any] = field(default_factory=dict)
    # per unit, over the metrics: name -> an expression, or {numerator, denominator}
    derived: dict[str, Any] = field(default_factory=dict)
    covariates: dict[str, Any] = field(default_factory=dict)  # pre-period, for CUPED

    def spec(self, columns: list[str]) -> OutcomeSpec:
        """The declared outcomes, every expression checked against the source ``columns``."""
        out = OutcomeSpec.from_dict(asdict(self), key="experiment.outcomes")
        out.check(columns)
        return out


@dataclass
class ExperimentConfig(ExperimentSpec):
    """``conf/experiment/*.yaml``: an A/B test between registry versions or aliases (the
    engine's :class:`ExperimentSpec`, checked when built) and where its outcomes come from."""

    unit: str = ""                        # required: the randomisation unit column (a user, a shop...)
    days_elapsed: Optional[float] = None  # files: how long it ran; simulate: its days
    outcomes: OutcomesConfig = field(default_factory=OutcomesConfig)
    simulation: SimulationSettings = field(default_factory=SimulationSettings)
    daily_units: Optional[float] = None   # plan: units entering per day; null = estimate


@dataclass
class ReplayConfig:
    """``action=replay``: send a window of events through the HTTP app, in process."""

    start_day: Optional[float] = None     # null = the last `days` of the data
    days: float = 14.0
    records_per_request: Optional[int] = None   # null = breaker.max_records_per_request (the
    # breaker observes every replayed record); more per request: the breaker sees only that many of each


@dataclass
class ServingConfig(ServingSettings):
    """``conf/serving/*.yaml``: the engine's settings plus what the actions need."""

    alias: str = "production"             # which registry version to serve / score with
    threshold: Optional[float] = None     # null = the served version's decision threshold (override)
    input: Optional[str] = None           # score: parquet glob; null = the configured data
    until_day: Optional[float] = None     # score: only events before this day offset
    shard: Optional[int] = None           # score: this shard of num_shards (by entity hash)
    num_shards: int = 1
    rows_per_partition: int = 1_000_000   # score: entity partitions of about this many rows
    parity_events: int = 300              # parity: events replayed
    as_of: Optional[str] = None           # materialize: load as of this ISO time; null = after the latest event
    replay: ReplayConfig = field(default_factory=ReplayConfig)

    def __post_init__(self) -> None:
        self.validate()


@dataclass
class EventCheck:
    """An event a lifecycle step shows: a field of the step's result and what it must hold."""

    event: str = "???"                    # the name in lifecycle.json's ``events``
    # dotted path into the step's result (its JSON report); ``list[key=value]`` picks the
    # first item of a list whose ``key`` is ``value``
    field: str = "???"
    equals: Optional[Union[bool, int, float, str]] = None  # null: the event is the field's value itself
    says: str = ""                        # words in the summary when the event holds ({value})


@dataclass
class StepConfig:
    name: str = "???"
    action: str = "???"
    overrides: list[str] = field(default_factory=list)
    story: str = ""                       # one line: what this step shows and why
    expect_exit: list[int] = field(default_factory=lambda: [0])
    events: list[EventCheck] = field(default_factory=list)


@dataclass
class LifecycleConfig:
    """``conf/lifecycle/*.yaml``: the whole story as an ordered list of actions."""

    title: str = "mlops lifecycle"        # the index page's title
    home: Optional[str] = None            # null = <run dir>/home: a fresh registry each run
    overrides: list[str] = field(default_factory=list)  # applied to every step
    steps: list[StepConfig] = field(default_factory=list)


@dataclass
class AppConfig:
    """The primary config. Group nodes carry their own schemas."""

    action: str = "features"
    seed: int = 7
    data: Optional[DataConfig] = None     # synthetic | files (SyntheticDataConfig, FileDataConfig)
    features: Optional[FeatureSpec] = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    model: Optional[ModelSettings] = None
    training: Optional[TrainingSettings] = None
    registry: Optional[RegistrySettings] = None
    serving: Optional[ServingConfig] = None
    monitoring: Optional[MonitoringSettings] = None
    experiment: Optional[ExperimentConfig] = None
    lifecycle: Optional[LifecycleConfig] = None


SCHEMAS: dict[tuple[str | None, str], type] = {
    (None, "mlops_schema"): AppConfig,
    ("data", "synthetic_schema"): SyntheticDataConfig,
    ("data", "files_schema"): FileDataConfig,
    ("features", "feature_spec_schema"): FeatureSpec,
    ("feature_group", "feature_group_schema"): FeatureGroupSpec,
    ("paths", "paths_schema"): PathsConfig,
    ("report", "report_schema"): ReportConfig,
    ("model", "model_schema"): ModelSettings,
    ("training", "training_schema"): TrainingSettings,
    ("registry", "registry_schema"): RegistrySettings,
    ("monitoring", "monitoring_schema"): MonitoringSettings,
    ("experiment", "experiment_schema"): ExperimentConfig,
    ("serving", "serving_schema"): ServingConfig,
    ("lifecycle", "lifecycle_schema"): LifecycleConfig,
}
