"""``conf/monitoring/*.yaml``: the monitoring group's settings, which are its config schema.

Built once per run from the YAML (Hydra's structured config); each class checks its
declared constraints when built, so a bad value fails before any data is read. The drift
policy, the concept-drift settings and the monitor's settings are built from these
(:meth:`MonitoringSettings.policy`, :meth:`~MonitoringSettings.monitor`), never copied by hand.

Example:
    >>> MonitoringSettings(n_bins=20).policy().n_bins
    20
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Optional

from mlops.constraints import Constrained, Interval, Options
from mlops.monitoring.concept import STREAMS, ConceptSettings, PerformanceSettings
from mlops.monitoring.estimation import CALIBRATION_METHODS
from mlops.monitoring.multivariate import MultivariateSettings
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.run import MonitorSettings
from mlops.monitoring.verdict import check_on_drift

SOURCES = ("window", "prediction_log", "files")
ESTIMATION_WINDOWS = ("train", "valid", "test")


@dataclass
class WindowSettings(Constrained):
    """The monitored window of the configured data, and when its labels are known."""

    start_day: Optional[float] = None     # day offset from the first event; null = last `days`
    days: float = 14.0
    label_wait_days: float = 0.0          # labels known by window end + this many days
    detector_burn_in_days: float = 14.0   # labelled days before the window fed to detectors first

    KEY: ClassVar[str] = "window"


@dataclass
class EstimationSettings(Constrained):
    """Performance before labels (CBPE) for classifiers."""

    enabled: bool = True
    chunk: Optional[str] = None           # null = performance.chunk
    reference: str = "test"               # the model's window that fits the calibration
    calibration: str = "auto"             # auto (isotonic when it lowers ECE) | isotonic | none
    min_labelled_share: float = 0.9       # show realized values once this share is labelled

    KEY: ClassVar[str] = "estimation"
    CONSTRAINTS: ClassVar[dict] = {
        "reference": [Options(*ESTIMATION_WINDOWS)],
        "calibration": [Options(*CALIBRATION_METHODS)],
        "min_labelled_share": [Interval(float, 0, 1, closed="both")]}


@dataclass
class ConsistencySettings(Constrained):
    """``action=consistency``: logged (online) features vs offline recomputation."""

    max_mismatch_rate: float = 0.001      # alert (exit 3) when a feature's rate is above this
    max_examples: int = 20                # mismatching rows listed per feature

    KEY: ClassVar[str] = "consistency"
    CONSTRAINTS: ClassVar[dict] = {"max_mismatch_rate": [Interval(float, 0, 1, closed="both")],
                                   "max_examples": [Interval(int, 0, None)]}


@dataclass
class MonitoringSettings(Constrained):
    """``conf/monitoring/*.yaml``: what to compare, thresholds, and what to do on drift."""

    source: str = "window"                # window | prediction_log | files
    current: Optional[str] = None         # files: parquet/csv glob of current rows
    # a string or a mapping, which OmegaConf cannot express as one type: parsed by
    # monitoring.reference_choice (monitor) or read as files (drift)
    reference: Any = "training"           # training | {start, end} | {previous: N} | a .npz (drift: a data glob)
    alias: str = "production"             # whose reference and model
    window: WindowSettings = field(default_factory=WindowSettings)
    n_bins: int = 10
    thresholds: dict[str, float] = field(default_factory=dict)
    small_sample_rows: int = 1000
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_share: float | None = None  # None: any feature past its family-wise limit
    prediction_drift_acts: bool = True    # the model's score drifting past its limit is data drift
    method: str = "calibrated"            # calibrated (spread over reference chunks) | fixed (thresholds)
    std_multiplier: float = 3.0           # calibrated limit = mean + this x std of the chunk statistic
    effect_floors: dict[str, float] = field(default_factory=dict)  # per test; {} = the defaults
    min_chunks: int = 6                   # fewer chunks of the window's size: smaller chunks (wider)
    max_chunks: int = 40                  # chunks measured per feature (evenly spaced)
    performance: PerformanceSettings = field(default_factory=PerformanceSettings)
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
    multivariate: MultivariateSettings = field(default_factory=MultivariateSettings)
    estimation: EstimationSettings = field(default_factory=EstimationSettings)
    consistency: ConsistencySettings = field(default_factory=ConsistencySettings)

    CONSTRAINTS: ClassVar[dict] = {
        "source": [Options(*SOURCES)], "detector_stream": [Options(*STREAMS)],
        "history_runs": [Interval(int, 1, None)],
        "reference_max_rows": [Interval(int, 2, None), None]}

    def check(self) -> None:
        """The declared constraints, the ``on_drift`` actions and the drift policy's keys."""
        check_on_drift(self.on_drift)
        super().check()
        self.policy()  # the drift policy checks its own keys (n_bins, thresholds, ...)

    def policy(self) -> DriftPolicy:
        """The drift policy these settings declare (``features`` are its per-feature overrides)."""
        return DriftPolicy(n_bins=self.n_bins, thresholds=dict(self.thresholds),
                           small_sample_rows=self.small_sample_rows,
                           overrides={k: dict(v) for k, v in self.features.items()},
                           drift_share=self.drift_share, min_rows=dict(self.min_rows),
                           min_reference_rows=self.min_reference_rows,
                           min_rows_dataset=self.min_rows_dataset, method=self.method,
                           std_multiplier=self.std_multiplier,
                           effect_floors=dict(self.effect_floors),
                           min_chunks=self.min_chunks, max_chunks=self.max_chunks)

    def concept(self, threshold: float) -> ConceptSettings:
        """Concept drift: ``performance`` with the detectors, judged at ``threshold`` (the
        monitored version's own decision threshold, never a monitoring key)."""
        return ConceptSettings(**asdict(self.performance), std_multiplier=self.std_multiplier,
                               min_chunks=self.min_chunks, threshold=threshold,
                               detector_stream=self.detector_stream,
                               detectors={k: dict(v) for k, v in self.detectors.items()})

    def monitor(self, threshold: float) -> MonitorSettings:
        """Everything ``action=monitor`` decides, for a model deciding at ``threshold``."""
        return MonitorSettings(policy=self.policy(), on_drift=tuple(self.on_drift),
                               prediction_drift_acts=self.prediction_drift_acts,
                               multivariate=self.multivariate.when_unset(enabled=True),
                               concept=self.concept(threshold))
