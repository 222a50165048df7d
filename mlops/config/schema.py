"""Structured-config schemas: one dataclass per config group.

Registered in Hydra's ConfigStore by :func:`mlops.config.store.register`; every
YAML file under ``conf/`` names its schema in its defaults list, so an unknown
key or a wrong type fails at compose time naming the key. Range checks that a
type cannot express live in :mod:`mlops.config.validate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from mlops.data.synthetic import SyntheticParams
from mlops.features.spec import FeatureGroupSpec, FeatureSpec
from mlops.serving.settings import ServingSettings


@dataclass
class LabelsConfig:
    """``data.labels``: labels in their own table (parquet/csv glob), joined point-in-time."""

    path: Optional[str] = None           # null = labels are a column of the events
    format: str = "auto"                 # auto | parquet | csv
    columns: dict[str, str] = field(default_factory=dict)   # source name -> our name
    by: str = "event_id"                 # event_id (one label per event) | entity (label spine)
    timestamp_format: Optional[str] = None


@dataclass
class SyntheticDataConfig(SyntheticParams):
    """``conf/data/synthetic*.yaml``: the embedded generator (see mlops.data.synthetic)."""

    source: str = "synthetic"
    event_id: Optional[str] = None        # conf/data/synthetic.yaml names the generator's id column
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    dedupe: bool = False


@dataclass
class FileDataConfig:
    """``conf/data/files.yaml``: parquet/csv files (globs), scanned lazily."""

    source: str = "files"
    path: Optional[str] = None         # required: a glob of parquet/csv files
    event_id: Optional[str] = None       # unique id per event (joins late labels/outcomes); null = none
    format: str = "auto"             # auto | parquet | csv
    columns: dict[str, str] = field(default_factory=dict)   # source name -> our name
    timestamp_format: Optional[str] = None                  # strptime format for csv strings
    labels: LabelsConfig = field(default_factory=LabelsConfig)  # labels in a separate table
    dedupe: bool = False                  # drop exact duplicate rows (same event id twice = error)


@dataclass
class PathsConfig:
    home: str = ".mlops"
    output_dir: str = "."


@dataclass
class ReportConfig:
    html: bool = True
    max_chart_features: int = 40
    title: str = "mlops"
    class_names: Optional[list[str]] = None   # [negative, positive] wording; null = negative/positive


@dataclass
class ModelConfig:
    """``conf/model/*.yaml``: an estimator (allowlisted ``_target_``) + preprocessing."""

    name: str = "model"                   # registry model name (set it in your project.yaml)
    _target_: str = "???"
    params: dict[str, Any] = field(default_factory=dict)
    scale_numeric: bool = True
    max_categories: int = 30


@dataclass
class FairnessConfig:
    attribute: Optional[str] = None   # sensitive attribute column (not a feature); null = no audit
    min_group_rows: int = 30


@dataclass
class ObjectiveConfig:
    metric: Optional[str] = None          # null = roc_auc (classification) or rmse (regression)
    split: str = "valid"                  # what sweepers optimise: never the test window


@dataclass
class ReferenceConfig:
    n_bins: int = 10
    max_rows: int = 200_000


@dataclass
class DecisionConfig:
    """``training.decision``: how a classifier's decision threshold is set (on validation)."""

    rule: str = "fixed"                   # fixed | positive_rate | precision | recall
    value: Optional[float] = 0.5          # fixed: the threshold
    target: Optional[float] = None        # positive_rate | precision | recall: the target


@dataclass
class TrainingConfig:
    """``conf/training/*.yaml``: time-based split, decision rule, fairness, registration."""

    start: Optional[str] = None           # first day of the train window; null = first event + warm-up
    warmup_days: Optional[float] = None   # skip rows whose windows are not full yet; null = longest window
    train_days: float = 40.0
    valid_days: float = 10.0
    test_days: float = 10.0
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    threshold: Optional[float] = None     # removed: training.decision (a ConfigError says so)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    fairness: FairnessConfig = field(default_factory=FairnessConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    register: bool = True
    description: str = ""
    compare_with: Optional[str] = None    # alias scored on the same test window (champion)
    features_path: Optional[str] = None   # a built feature table (parquet glob): skip computing it


@dataclass
class S3Config:
    """``registry.s3``: where an ``s3://`` artefact store is (credentials: boto3's usual chain)."""

    endpoint_url: Optional[str] = None    # null = AWS; e.g. https://minio.internal:9000
    region: Optional[str] = None


@dataclass
class RegistryConfig:
    """``conf/registry/*.yaml``: where the registry lives, promotion gates per alias and the
    CLI's targets."""

    url: Optional[str] = None             # null = <paths.home>/registry/registry.db (SQLite); a path,
                                          # sqlite:///..., or postgresql://user@host:port/db (no password)
    password_file: Optional[str] = None   # PostgreSQL password (first line, 0600); else PGPASSWORD, ~/.pgpass
    artifacts: Optional[str] = None       # null = <paths.home>/registry/artifacts; a path, file:///..., s3://...
    s3: S3Config = field(default_factory=S3Config)

    model_name: Optional[str] = None      # null = model.name
    version: Optional[int] = None         # promote/approve target
    alias: str = "production"
    approver: Optional[str] = None
    actor: Optional[str] = None
    comment: Optional[str] = None
    policies: dict[str, list[Any]] = field(default_factory=dict)
    trusted_types: list[str] = field(default_factory=list)
    # name -> {public_key: "ed25519:..."} or {public_key_file: <path, relative = under paths.home>}
    approvers: dict[str, Any] = field(default_factory=dict)
    key_file: Optional[str] = None        # approve/keygen: private key; null = <home>/keys/<approver>.key
    expect_head: Optional[str] = None     # verify: a chain head printed earlier must still be in the chain
    gc_min_age_seconds: float = 600.0     # gc: younger interrupted writes may be registrations in progress


@dataclass
class WindowConfig:
    start_day: Optional[float] = None     # day offset from the first event; null = last `days`
    days: float = 14.0
    label_wait_days: float = 0.0          # labels known by window end + this many days
    detector_burn_in_days: float = 14.0   # labelled days before the window fed to detectors first


@dataclass
class PerformanceConfig:
    metric: Optional[str] = None          # null = roc_auc (classification) or rmse (regression)
    chunk: str = "7d"                     # "1d", "7d", or a row count like "5000"
    # null: calibrated on the model's baseline chunks; "20%": relative to the baseline;
    # a number: absolute, in the metric's units
    max_change: Optional[Any] = None
    min_change: float = 0.05              # a calibrated band is at least this share of the baseline


@dataclass
class MultivariateConfig:
    """Domain-classifier drift: can a classifier tell current rows from reference rows?"""

    enabled: Optional[bool] = None        # null: on in action=monitor, off in action=drift
    max_rows: int = 5_000                 # rows sampled per side (reference, current)
    folds: int = 3                        # cross-validation folds for the out-of-fold AUC
    permutations: int = 500               # label shuffles for the AUC threshold
    alpha: float = 0.05                   # drift when the AUC beats the (1 - alpha) quantile
    min_auc: float = 0.55                 # ... and this effect size
    top_features: int = 5
    seed: int = 0
    act: bool = False                     # multivariate drift alone triggers on_drift actions


@dataclass
class EstimationConfig:
    """Performance before labels (CBPE) for classifiers."""

    enabled: bool = True
    chunk: Optional[str] = None           # null = performance.chunk
    reference: str = "test"               # the model's window that fits the calibration
    calibration: str = "auto"             # auto (isotonic when it lowers ECE) | isotonic | none
    min_labelled_share: float = 0.9       # show realized values once this share is labelled


@dataclass
class ConsistencyConfig:
    """``action=consistency``: logged (online) features vs offline recomputation."""

    max_mismatch_rate: float = 0.001      # alert (exit 3) when a feature's rate is above this
    max_examples: int = 20                # mismatching rows listed per feature


@dataclass
class MonitoringConfig:
    """``conf/monitoring/*.yaml``: what to compare, thresholds, and what to do on drift."""

    source: str = "window"                # window | prediction_log | files
    current: Optional[str] = None         # files: parquet/csv glob of current rows
    # monitor: training (the model's own) | {start, end} | {previous: N} | a reference .npz;
    # drift: the reference data (parquet/csv glob) or a .npz
    reference: Any = "training"
    alias: str = "production"             # whose reference and model
    window: WindowConfig = field(default_factory=WindowConfig)
    n_bins: int = 10
    thresholds: dict[str, float] = field(default_factory=dict)
    small_sample_rows: int = 1000
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_share: float = 0.5
    prediction_drift_acts: bool = True    # the model's score drifting past its limit is data drift
    method: str = "calibrated"            # calibrated (spread over reference chunks) | fixed (thresholds)
    std_multiplier: float = 3.0           # calibrated limit = mean + this x std of the chunk statistic
    effect_floors: dict[str, float] = field(default_factory=dict)  # per test; {} = the defaults
    min_chunks: int = 6                   # fewer chunks of the window's size: smaller chunks (wider)
    max_chunks: int = 40                  # chunks measured per feature (evenly spaced)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    detector_stream: str = "errors"       # errors | missed_positives
    on_drift: list[str] = field(default_factory=lambda: ["alert"])
    retrain_days: float = 40.0            # retrain: days of recent labelled data to train on
    min_rows: dict[str, int] = field(default_factory=dict)  # per test; fewer = insufficient_data
    min_reference_rows: int = 100
    min_rows_dataset: int = 50            # dataset drift (and alerts) need this many rows
    columns: Optional[list[str]] = None   # action=drift: columns to compare; null = shared ones
    column_types: dict[str, str] = field(default_factory=dict)  # drift: {col: numeric|categorical}
    reference_max_rows: Optional[int] = None  # drift: sorted values kept per column; null = all (exact)
    history_runs: int = 20                # runs shown in the drift-over-time charts
    multivariate: MultivariateConfig = field(default_factory=MultivariateConfig)
    estimation: EstimationConfig = field(default_factory=EstimationConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)


@dataclass
class OutcomesConfig:
    source: str = "simulate"              # simulate | prediction_log | units | sufficient
    path: Optional[str] = None            # units/sufficient: parquet/csv glob
    variant_col: str = "variant"
    period_col: Optional[str] = "day"     # per-period rows for the novelty check
    # simulate / prediction_log: name -> {expr: SQL over a served row (source columns,
    # score, decision), agg: sum|mean|count|min|max}
    metrics: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, Any] = field(default_factory=dict)     # per unit, over the metrics
    covariates: dict[str, Any] = field(default_factory=dict)  # pre-period, for CUPED


@dataclass
class SimulationConfig:
    """Live traffic from the embedded data, scored by each variant's model."""

    start_day: Optional[float] = None     # null = the last `days` of the data
    days: float = 21.0
    threshold: Optional[float] = None     # null = each variant's own decision threshold (override)
    pre_days: float = 28.0                # pre-period for the CUPED covariates


@dataclass
class ExperimentConfig:
    """``conf/experiment/*.yaml``: an A/B test between registry versions or aliases."""

    key: str = "???"
    seed: str = ""
    name: str = ""
    unit: str = ""                        # the randomisation unit column (a user, a shop...)
    control: Optional[str] = None
    variants: list[Any] = field(default_factory=list)
    primary_metric: dict[str, Any] = field(default_factory=dict)
    secondary_metrics: list[Any] = field(default_factory=list)
    guardrails: list[Any] = field(default_factory=list)
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.02
    mde_type: str = "relative"
    min_duration_days: float = 7.0
    cuped_covariate: Optional[str] = None
    sequential: bool = False
    sequential_tuning: float = 5000.0
    correction: str = "holm"
    days_elapsed: Optional[float] = None  # files: how long it ran; simulate: its days
    outcomes: OutcomesConfig = field(default_factory=OutcomesConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    daily_units: Optional[float] = None   # plan: units entering per day; null = estimate


@dataclass
class ReplayConfig:
    """``action=replay``: send a window of events through the HTTP app, in process."""

    start_day: Optional[float] = None     # null = the last `days` of the data
    days: float = 14.0
    records_per_request: int = 50


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


@dataclass
class EventCheck:
    """An event a lifecycle step shows: a field of the step's result and what it must hold."""

    event: str = "???"                    # the name in lifecycle.json's ``events``
    # dotted path into the step's result (its JSON report); ``list[key=value]`` picks the
    # first item of a list whose ``key`` is ``value``
    field: str = "???"
    equals: Any = None                    # null: the event is the field's value itself
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
    ("model", "model_schema"): ModelConfig,
    ("training", "training_schema"): TrainingConfig,
    ("registry", "registry_schema"): RegistryConfig,
    ("monitoring", "monitoring_schema"): MonitoringConfig,
    ("experiment", "experiment_schema"): ExperimentConfig,
    ("serving", "serving_schema"): ServingConfig,
    ("lifecycle", "lifecycle_schema"): LifecycleConfig,
}
