"""The server's Prometheus metrics, through ``prometheus_client``: each declared once.

:class:`ServingMetrics` declares every metric of the serving app in ONE place, in its
own :class:`prometheus_client.CollectorRegistry` (one per app, so two apps in one
process, e.g. tests or A/B variants, never share or collide). ``GET /metrics`` returns
:meth:`ServingMetrics.render`.

Several worker processes (``uvicorn --workers N``, gunicorn): set the environment
variable ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory *before* the processes
start; each worker then writes its samples to memory-mapped files there and
:meth:`render` aggregates all workers (``prometheus_client.multiprocess``): counters and
histograms are summed, gauges use the ``multiprocess_mode`` declared below. Clear the
directory between runs.

Example:
    >>> m = ServingMetrics()
    >>> m.http_requests.labels(path="/predict", status="200").inc()
    >>> 'mlops_http_requests_total{path="/predict",status="200"} 1.0' in m.render()
    True
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServingMetrics:
    """Every metric the serving app exports, declared once, in a private registry."""

    def __init__(self):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter("mlops_http_requests", "HTTP requests by path and status.",
                                     ["path", "status"], registry=r)
        self.http_latency = Histogram("mlops_http_request_duration_seconds",
                                      "HTTP request latency.", ["path"],
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.batch_records = Histogram("mlops_batch_records",
                                       "Records per micro-batch (one model call).",
                                       buckets=BATCH_BUCKETS, registry=r)
        self.feature_batches = Counter("mlops_feature_batches", "Micro-batches by the feature "
                                       "backend that computed them (rows, frames).", ["backend"],
                                       registry=r)
        self.predictions = Counter("mlops_predictions", "Records scored, by who answered.",
                                   ["served_by"], registry=r)
        self.breaker_tripped = Gauge("mlops_breaker_tripped",
                                     "1 when the circuit breaker is tripped.", registry=r,
                                     multiprocess_mode="max")
        self.breaker_window_records = Gauge("mlops_breaker_window_records",
                                            "Records in the breaker window.", registry=r,
                                            multiprocess_mode="liveall")
        self.breaker_prediction_psi = Gauge("mlops_breaker_prediction_psi",
                                            "PSI of the prediction score over the breaker "
                                            "window.", registry=r, multiprocess_mode="liveall")
        self.breaker_feature_psi = Gauge("mlops_breaker_feature_psi",
                                         "PSI of each monitored feature over the breaker "
                                         "window.", ["feature"], registry=r,
                                         multiprocess_mode="liveall")
        self.log_pending = Gauge("mlops_prediction_log_pending",
                                 "Prediction log records not yet compacted into parquet.",
                                 registry=r, multiprocess_mode="livesum")
        self.log_commits = Gauge("mlops_prediction_log_commits",
                                 "Group commits (fsyncs) of the prediction log journal.",
                                 registry=r, multiprocess_mode="livesum")
        self.log_damaged_regions = Gauge("mlops_prediction_log_damaged_regions",
                                         "Damaged journal byte ranges skipped (moved to quarantine).",
                                         registry=r, multiprocess_mode="livesum")
        self.log_damaged_bytes = Gauge("mlops_prediction_log_damaged_bytes",
                                       "Bytes of damaged journal records (moved to quarantine).",
                                       registry=r, multiprocess_mode="livesum")
        self.log_recovered_records = Gauge("mlops_prediction_log_recovered_records",
                                           "Records recovered from a crashed server's journal at start.",
                                           registry=r, multiprocess_mode="livesum")
        self.connections_open = Gauge("mlops_connections_open", "Open client connections.",
                                      registry=r, multiprocess_mode="livesum")
        self.connections_refused = Gauge("mlops_connections_refused",
                                         "Connections answered 503 at serving.max_connections "
                                         "(every connection busy).", registry=r,
                                         multiprocess_mode="livesum")
        self.connections_evicted = Gauge("mlops_connections_evicted",
                                         "Idle connections closed at serving.max_connections "
                                         "to admit new ones.", registry=r, multiprocess_mode="livesum")
        self._by_name = {m._name: m for m in vars(self).values()
                         if isinstance(m, MetricWrapperBase)}

    def render(self) -> bytes:
        """The Prometheus text exposition of this app (all workers in multi-process mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    # Name-based access for code that reports a declared metric by its name.
    def _metric(self, name: str) -> MetricWrapperBase:
        key = name[:-len("_total")] if name.endswith("_total") else name
        try:
            return self._by_name[key]
        except KeyError:
            raise KeyError(f"metric {name!r} is not declared in ServingMetrics; declare it "
                           "there once") from None

    def counter(self, name: str, help_text: str = "", value: float = 1.0, **labels) -> None:
        """Add ``value`` to a declared counter."""
        m = self._metric(name)
        (m.labels(**labels) if labels else m).inc(value)

    def gauge(self, name: str, help_text: str = "", value: float | None = None,
              **labels) -> None:
        """Set a declared gauge (None -> NaN)."""
        m = self._metric(name)
        (m.labels(**labels) if labels else m).set(float("nan") if value is None else value)

    def clear_gauge(self, name: str) -> None:
        """Drop every labelled series of a gauge (e.g. PSIs after a breaker reset)."""
        m = self._metric(name)
        if m._labelnames:
            m.clear()

    def value(self, name: str, **labels) -> float | None:
        """Current value of a counter/gauge series (tests, /ready); None when absent."""
        return self.registry.get_sample_value(name, labels)

    def observe(self, name: str, help_text: str = "", value: float = 0.0, buckets=None,
                **labels) -> None:
        """Record one observation in a declared histogram (its buckets are declared)."""
        m = self._metric(name)
        (m.labels(**labels) if labels else m).observe(value)


Metrics = ServingMetrics  # the name the state used before
