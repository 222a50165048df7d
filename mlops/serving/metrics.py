"""A tiny Prometheus text-format registry (counters, gauges, histograms with labels).

No client library needed: the server exposes ``GET /metrics`` in the text exposition
format (version 0.0.4) that Prometheus scrapes.

Example:
    >>> m = Metrics()
    >>> m.counter("mlops_requests_total", "Requests.", path="/predict", status="200")
    >>> "mlops_requests_total{path=\\"/predict\\",status=\\"200\\"} 1.0" in m.render()
    True
"""
from __future__ import annotations

import bisect
import math
import threading

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    def esc(v) -> str:
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in sorted(labels.items())) + "}"


def _num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if isinstance(v, float) and math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if isinstance(v, float) else str(v)


class Metrics:
    """Thread-safe in-memory metrics; :meth:`render` gives the Prometheus text."""

    def __init__(self):
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[tuple, float]] = {}
        self._hists: dict[str, dict[tuple, list]] = {}
        self._buckets: dict[str, tuple] = {}

    def _declare(self, name: str, kind: str, help_text: str) -> None:
        if name not in self._help:
            self._help[name] = (kind, help_text)

    def counter(self, name: str, help_text: str, value: float = 1.0, **labels) -> None:
        """Add ``value`` to a counter."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._declare(name, "counter", help_text)
            series = self._values.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def gauge(self, name: str, help_text: str, value: float | None, **labels) -> None:
        """Set a gauge (None -> NaN)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._declare(name, "gauge", help_text)
            self._values.setdefault(name, {})[key] = float("nan") if value is None else value

    def clear_gauge(self, name: str) -> None:
        """Drop every series of a gauge (e.g. PSIs after a breaker reset)."""
        with self._lock:
            self._values.pop(name, None)

    def observe(self, name: str, help_text: str, value: float,
                buckets: tuple = LATENCY_BUCKETS, **labels) -> None:
        """Record one observation in a histogram."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._declare(name, "histogram", help_text)
            self._buckets.setdefault(name, buckets)
            b = self._buckets[name]
            h = self._hists.setdefault(name, {}).setdefault(key, [[0] * (len(b) + 1), 0.0, 0])
            h[0][bisect.bisect_left(b, value)] += 1
            h[1] += value
            h[2] += 1

    def value(self, name: str, **labels) -> float | None:
        """Current value of a counter/gauge series (tests, /ready)."""
        with self._lock:
            return self._values.get(name, {}).get(tuple(sorted(labels.items())))

    def render(self) -> str:
        lines = []
        with self._lock:
            for name, (kind, help_text) in sorted(self._help.items()):
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                if kind == "histogram":
                    b = self._buckets[name]
                    for key, (counts, total, n) in sorted(self._hists.get(name, {}).items()):
                        labels = dict(key)
                        cum = 0
                        for edge, c in zip((*b, float("inf")), counts):
                            cum += c
                            le = "+Inf" if math.isinf(edge) else repr(float(edge))
                            lines.append(f"{name}_bucket{_labels({**labels, 'le': le})} {cum}")
                        lines.append(f"{name}_sum{_labels(labels)} {_num(total)}")
                        lines.append(f"{name}_count{_labels(labels)} {n}")
                else:
                    for key, v in sorted(self._values.get(name, {}).items()):
                        lines.append(f"{name}{_labels(dict(key))} {_num(v)}")
        return "\n".join(lines) + "\n"
