"""Streaming concept-drift detectors over an error stream (0/1 errors or per-row losses).

Each detector has ``update(x) -> bool`` (True when drift is detected at this step), a
``drift_detected`` attribute and ``reset()``. The update rules follow the published methods
and river's implementations, so detections match river's for the same stream and parameters:

* :class:`PageHinkley` - Page (1954): cumulative deviation from the running mean, two-sided.
* :class:`DDM` - Gama et al. (2004): error rate p_i and s_i = sqrt(p_i (1 - p_i) / i); warning
  when p_i + s_i > p_min + 2 s_min, drift when > p_min + 3 s_min.
* :class:`ADWIN` - Bifet & Gavalda (2007): an adaptive window kept as an exponential histogram
  of buckets; drift when two sub-windows have means further apart than the Hoeffding-style bound.

>>> first_detection(PageHinkley(threshold=5.0), [0.0] * 100 + [1.0] * 100)
105
"""
from __future__ import annotations

import math
from typing import Iterable

from mlops.constraints import Interval, Options, check, validate
from mlops.errors import DataError

__all__ = ["PageHinkley", "DDM", "ADWIN", "first_detection", "detections"]


class PageHinkley:
    """Page-Hinkley test for a change in the mean of a stream.

    With the running mean ``x̄_t``: ``m_t = alpha * m_{t-1} + (x_t - x̄_t - delta)`` and drift
    when ``m_t - min(m) > threshold`` (an increase); for decreases ``M_t = alpha * M_{t-1} +
    (x_t - x̄_t + delta)`` and drift when ``max(M) - M_t > threshold``. ``mode`` picks
    'up', 'down' or 'both'. No detection before ``min_instances`` values; the state resets
    on the update after a detection.
    """

    _parameter_constraints = {
        "delta": [Interval(float, 0, None, closed="left")],
        "threshold": [Interval(float, 0, None, closed="neither")],
        "alpha": [Interval(float, 0, 1, closed="right")],
        "min_instances": [Interval(int, 1, None)],
        "mode": [Options("up", "down", "both")],
    }

    def __init__(self, delta: float = 0.005, threshold: float = 50.0, alpha: float = 1 - 0.0001,
                 min_instances: int = 30, mode: str = "both"):
        validate(dict(delta=delta, threshold=threshold, alpha=alpha, min_instances=min_instances,
                      mode=mode), self._parameter_constraints)
        self.delta, self.threshold, self.alpha = float(delta), float(threshold), float(alpha)
        self.min_instances, self.mode = min_instances, mode
        self.drift_detected = False
        self.reset()

    def reset(self) -> None:
        """Forget the stream seen so far."""
        self.n = 0
        self.mean = 0.0
        self.sum_increase = 0.0
        self.sum_decrease = 0.0
        self.min_increase = math.inf
        self.max_decrease = -math.inf
        self.drift_detected = False

    def update(self, x: float) -> bool:
        """Add one value; True when a change is detected at this step."""
        if self.drift_detected:
            self.reset()
        x = _number(x)
        self.n += 1
        self.mean += (x - self.mean) / self.n
        dev = x - self.mean
        self.sum_increase = self.alpha * self.sum_increase + dev - self.delta
        self.sum_decrease = self.alpha * self.sum_decrease + dev + self.delta
        self.min_increase = min(self.min_increase, self.sum_increase)
        self.max_decrease = max(self.max_decrease, self.sum_decrease)
        if self.n >= self.min_instances:
            up = self.sum_increase - self.min_increase > self.threshold
            down = self.max_decrease - self.sum_decrease > self.threshold
            self.drift_detected = {"up": up, "down": down, "both": up or down}[self.mode]
        return self.drift_detected


class DDM:
    """Drift Detection Method (Gama et al., 2004) on a stream of 0/1 errors (1 = error).

    ``p_i`` is the error rate after ``i`` values and ``s_i = sqrt(p_i (1 - p_i) / i)``. Once
    ``i > min_instances``, the minimum of ``p_i + s_i`` is tracked as ``(p_min, s_min)``;
    ``warning_detected`` when ``p_i + s_i > p_min + warning_level * s_min`` and drift when
    ``p_i + s_i > p_min + out_control_level * s_min``. The state resets after a drift.
    While ``s_min`` is 0 (no error at all up to the minimum) the test is undefined and raises
    nothing: river's DDM would call the first error of a clean start a drift.
    """

    _parameter_constraints = {
        "warning_level": [Interval(float, 0, None, closed="neither")],
        "out_control_level": [Interval(float, 0, None, closed="neither")],
        "min_instances": [Interval(int, 0, None)],
    }

    def __init__(self, warning_level: float = 2.0, out_control_level: float = 3.0,
                 min_instances: int = 30):
        validate(dict(warning_level=warning_level, out_control_level=out_control_level,
                      min_instances=min_instances), self._parameter_constraints)
        check("out_control_level", out_control_level,
              [Interval(float, warning_level, None, closed="left")],
              fix=f"set out_control_level >= warning_level ({warning_level})")
        self.warning_level, self.out_control_level = float(warning_level), float(out_control_level)
        self.min_instances = min_instances
        self.drift_detected = False
        self.reset()

    def reset(self) -> None:
        """Forget the stream seen so far."""
        self.n = 0
        self.p = 0.0
        self.p_min = math.inf
        self.s_min = math.inf
        self.ps_min = math.inf
        self.drift_detected = False
        self.warning_detected = False

    def update(self, x: float) -> bool:
        """Add one outcome (1/True = error, 0/False = correct); True on a drift."""
        if self.drift_detected:
            self.reset()
        if x not in (0, 1):
            raise DataError(f"DDM takes 0/1 errors (1 = error); got {x!r}", key="error",
                            fix="pass 1 for a wrong prediction and 0 for a right one, or use "
                                "PageHinkley/ADWIN for losses")
        self.n += 1
        self.p += (float(x) - self.p) / self.n
        s = math.sqrt(self.p * (1.0 - self.p) / self.n)
        if self.n > self.min_instances:
            if self.p + s <= self.ps_min:
                self.p_min, self.s_min, self.ps_min = self.p, s, self.p + s
            if self.s_min == 0.0:  # no error before the minimum: the test is undefined
                return False
            self.warning_detected = self.p + s > self.p_min + self.warning_level * self.s_min
            if self.p + s > self.p_min + self.out_control_level * self.s_min:
                self.drift_detected = True
                self.warning_detected = False
        return self.drift_detected


class ADWIN:
    """ADaptive WINdowing (Bifet & Gavalda, 2007), with river's defaults and update rules.

    The window is an exponential histogram: row ``i`` holds up to ``max_buckets`` buckets of
    ``2**i`` values each (total and variance), oldest first; a row with one bucket too many
    merges its two oldest into the next row. Every ``clock`` values (once the window is
    longer than ``grace_period``) each cut into an older ``W0`` and a newer ``W1`` (both at
    least ``min_window_length`` long) is tested:
    ``|mean(W0) - mean(W1)| > sqrt(2 m var ln(2 ln(n) / delta)) + 2/3 ln(2 ln(n) / delta) m``
    with ``m = 1/(n0 - mwl + 1) + 1/(n1 - mwl + 1)`` and ``var`` the window variance; on a
    cut the oldest bucket is dropped and the test repeats. After a detection the next update
    starts a new window (as river does).
    """

    _parameter_constraints = {
        "delta": [Interval(float, 0, 1, closed="neither")],
        "clock": [Interval(int, 1, None)],
        "max_buckets": [Interval(int, 2, None)],
        "min_window_length": [Interval(int, 1, None)],
        "grace_period": [Interval(int, 0, None)],
    }

    def __init__(self, delta: float = 0.002, clock: int = 32, max_buckets: int = 5,
                 min_window_length: int = 5, grace_period: int = 10):
        validate(dict(delta=delta, clock=clock, max_buckets=max_buckets,
                      min_window_length=min_window_length, grace_period=grace_period),
                 self._parameter_constraints)
        self.delta, self.clock, self.max_buckets = float(delta), clock, max_buckets
        self.min_window_length, self.grace_period = min_window_length, grace_period
        self.drift_detected = False
        self.reset()

    def reset(self) -> None:
        """Empty the window."""
        # rows[i] = (totals, variances) of the buckets of size 2**i, oldest first.
        self._rows: list[tuple[list[float], list[float]]] = [([], [])]
        self.total = 0.0
        self.variance = 0.0
        self.width = 0
        self.n_detections = 0
        self._tick = 0
        self.drift_detected = False

    @property
    def estimation(self) -> float:
        """Mean of the current window (0 when empty)."""
        return self.total / self.width if self.width else 0.0

    def update(self, x: float) -> bool:
        """Add one value; True when the window was cut (a change) at this step.

        As in river, the update after a detection starts from an empty window.
        """
        if self.drift_detected:
            self.reset()
        self._insert(_number(x))
        self.drift_detected = self._detect_change()
        return self.drift_detected

    def _insert(self, value: float) -> None:
        totals, variances = self._rows[0]
        totals.append(value)
        variances.append(0.0)
        self.width += 1
        if self.width > 1:
            prev_mean = self.total / (self.width - 1)
            self.variance += (self.width - 1) * (value - prev_mean) ** 2 / self.width
        self.total += value
        self._compress()

    def _compress(self) -> None:
        idx = 0
        while idx < len(self._rows):
            totals, variances = self._rows[idx]
            if len(totals) != self.max_buckets + 1:
                break
            if idx + 1 == len(self._rows):
                self._rows.append(([], []))
            size = 2.0 ** idx
            mu1, mu2 = totals[0] / size, totals[1] / size
            next_totals, next_variances = self._rows[idx + 1]
            next_totals.append(totals[0] + totals[1])
            next_variances.append(variances[0] + variances[1]
                                  + size * size * (mu1 - mu2) ** 2 / (size + size))
            del totals[:2], variances[:2]
            if len(next_totals) <= self.max_buckets:
                break
            idx += 1

    def _delete_oldest(self) -> float:
        totals, variances = self._rows[-1]
        size = 2.0 ** (len(self._rows) - 1)
        u, v = totals[0], variances[0]
        self.width -= int(size)
        self.total -= u
        mu_window = self.total / self.width
        self.variance -= v + size * self.width * (u / size - mu_window) ** 2 / (size + self.width)
        del totals[0], variances[0]
        if not totals:
            self._rows.pop()
        return size

    def _detect_change(self) -> bool:
        change = False
        self._tick += 1
        if self._tick % self.clock != 0 or self.width <= self.grace_period:
            return False
        reduce_width = True
        while reduce_width:
            reduce_width = False
            n0, n1, u0, u1 = 0.0, float(self.width), 0.0, self.total
            # Cut points from the oldest bucket to the newest (W0 = older part).
            for idx, k in self._buckets_oldest_first():
                size = 2.0 ** idx
                total = self._rows[idx][0][k]
                n0 += size
                n1 -= size
                u0 += total
                u1 -= total
                if idx == 0 and k == len(self._rows[0][0]) - 1:
                    break  # W1 would be empty
                if (n1 >= self.min_window_length and n0 >= self.min_window_length
                        and self._cut(n0, n1, u0 / n0 - u1 / n1)):
                    reduce_width = change = True
                    if self.width > 0:
                        self._delete_oldest()
                        break
        if change:
            self.n_detections += 1
        return change

    def _buckets_oldest_first(self):
        for idx in range(len(self._rows) - 1, -1, -1):
            for k in range(len(self._rows[idx][0])):
                yield idx, k

    def _cut(self, n0: float, n1: float, delta_mean: float) -> bool:
        delta_prime = math.log(2.0 * math.log(self.width) / self.delta)
        m_recip = 1.0 / (n0 - self.min_window_length + 1) + 1.0 / (n1 - self.min_window_length + 1)
        variance = max(self.variance / self.width, 0.0)  # rounding can make it -1e-17
        epsilon = math.sqrt(2.0 * m_recip * variance * delta_prime) + 2.0 / 3.0 * delta_prime * m_recip
        return abs(delta_mean) > epsilon


def first_detection(detector: PageHinkley | DDM | ADWIN, stream: Iterable[float]) -> int | None:
    """Index of the first value at which ``detector`` signals drift, or None.

    The detector is updated in place (pass a fresh one).
    """
    for i, x in enumerate(stream):
        if detector.update(x):
            return i
    return None


def detections(detector: PageHinkley | DDM | ADWIN, stream: Iterable[float]) -> list[int]:
    """Indices of every value at which ``detector`` signals drift (updated in place)."""
    return [i for i, x in enumerate(stream) if detector.update(x)]


def _number(x: object) -> float:
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"detectors take finite numbers; got {x!r}", key="error",
                        fix="drop rows whose error or loss is missing or infinite")
    return value
