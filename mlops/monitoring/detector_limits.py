"""Detector alarm levels calibrated on the model's own baseline error stream.

Page-Hinkley and DDM assume independent errors; real error streams come in bursts (one
customer's fraud, one storm's readings), and a burst in a stable period then looks like a
change. So the alarm level is also calibrated on the model's baseline stream (its errors on
the validation and test windows, where by definition nothing changed): the stream is
resampled in blocks (a moving-block bootstrap keeps the bursts and slow changes of level;
blocks of a quarter of the monitored stream) to
the length of the monitored stream, each detector's statistic is computed on every
replicate without alarms, and the alarm level is the larger of the configured one and the
``1 - false_alarm`` quantile of the replicates' maxima. A stable window then stays quiet
with probability about ``1 - false_alarm``, whatever the model's error level or burstiness.

The statistics are computed vectorised, with the update rules of
:mod:`mlops.monitoring.detectors` (tests compare them with the streaming detectors):

* Page-Hinkley: ``max_t max(m_t - min_{s<=t} m_s, max_{s<=t} M_s - M_t)`` (the first term
  alone in mode 'up', the second in 'down') for
  ``t >= min_instances``, with ``m_t = alpha m_{t-1} + x_t - mean_t - delta`` and
  ``M_t = alpha M_{t-1} + x_t - mean_t + delta``;
* DDM: ``max_t (p_t + s_t - p_min) / s_min`` for ``t > min_instances``, ``(p_min, s_min)``
  taken where ``p + s`` was smallest so far (the level in standard deviations; 0 while
  ``s_min`` is 0, as the detector raises nothing there).
"""
from __future__ import annotations

import math

import numpy as np

DEFAULT_FALSE_ALARM = 0.01
REPLICATES = 100


def page_hinkley_max(streams: np.ndarray, *, delta: float, alpha: float, min_instances: int,
                     mode: str = "both") -> np.ndarray:
    """Page-Hinkley's largest statistic per row of ``streams`` (no alarm, no reset); ``mode``
    'up' watches increases only, 'down' decreases only, 'both' either."""
    from scipy.signal import lfilter  # here: scipy.signal costs ~0.2 s to import, action=drift never calls this
    x = np.atleast_2d(np.asarray(streams, dtype=np.float64))
    n = np.arange(1, x.shape[1] + 1, dtype=np.float64)
    dev = x - np.cumsum(x, axis=1) / n
    up = lfilter([1.0], [1.0, -alpha], dev - delta, axis=1)
    down = lfilter([1.0], [1.0, -alpha], dev + delta, axis=1)
    rise = up - np.minimum.accumulate(up, axis=1)
    fall = np.maximum.accumulate(down, axis=1) - down
    stat = {"up": rise, "down": fall}.get(mode, np.maximum(rise, fall))
    start = max(int(min_instances) - 1, 0)
    return stat[:, start:].max(axis=1) if stat.shape[1] > start else np.zeros(x.shape[0])


def ddm_max(streams: np.ndarray, *, min_instances: int) -> np.ndarray:
    """DDM's largest level ``(p + s - p_min) / s_min`` per row (0 where undefined)."""
    x = np.atleast_2d(np.asarray(streams, dtype=np.float64))
    i = np.arange(1, x.shape[1] + 1, dtype=np.float64)
    p = np.cumsum(x, axis=1) / i
    s = np.sqrt(p * (1.0 - p) / i)
    total = p + s
    total[:, : int(min_instances)] = np.inf          # no minimum before min_instances
    idx = np.arange(x.shape[1])
    best = np.where(total == np.minimum.accumulate(total, axis=1), idx, 0)
    at = np.maximum.accumulate(best, axis=1)          # index of the running minimum
    p_min = np.take_along_axis(p, at, axis=1)
    s_min = np.take_along_axis(s, at, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(s_min > 0, (total - p_min) / s_min, 0.0)
    level[:, : int(min_instances)] = 0.0
    level[~np.isfinite(level)] = 0.0
    return level.max(axis=1)


def block_bootstrap(stream: np.ndarray, length: int, replicates: int, seed: int = 0) -> np.ndarray:
    """``replicates`` streams of ``length`` values made of consecutive blocks of ``stream``.

    Blocks are long: a quarter of the monitored stream (at least sqrt(n), at most half the
    baseline), so a replicate carries the baseline's own slow changes of level (one season
    worse than another) and not only its bursts; shorter blocks average those away and the
    calibrated level then calls an ordinary season a change."""
    stream = np.asarray(stream, dtype=np.float64)
    n = stream.size
    block = max(1, int(math.sqrt(n)), min(n // 2, length // 4))
    starts_per = -(-length // block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, max(n - block, 0) + 1, size=(replicates, starts_per))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(replicates, -1)[:, :length]
    return stream[idx]


def calibrate_detector(name: str, params: dict, baseline: np.ndarray | None, length: int, *,
                       false_alarm: float = DEFAULT_FALSE_ALARM, seed: int = 0) -> tuple[dict, dict | None]:
    """``params`` with the alarm level raised to the baseline's no-change quantile, and what was
    done (None when there is nothing to calibrate on or for this detector)."""
    if baseline is None or baseline.size < 30 or length < 2 or name not in ("page_hinkley", "ddm"):
        return params, None
    reps = block_bootstrap(baseline, length, REPLICATES, seed)
    if name == "page_hinkley":
        maxima = page_hinkley_max(reps, delta=float(params["delta"]), alpha=float(params.get("alpha", 1 - 1e-4)),
                                  min_instances=int(params.get("min_instances", 30)),
                                  mode=str(params.get("mode", "both")))
        key = "threshold"
    else:
        maxima = ddm_max(reps, min_instances=int(params.get("min_instances", 30)))
        key = "out_control_level"
    configured = float(params.get(key, 3.0 if name == "ddm" else 50.0))
    quantile = float(np.quantile(maxima, 1.0 - false_alarm))
    out = {**params, key: max(configured, quantile)}
    if name == "ddm":
        out["warning_level"] = min(float(params.get("warning_level", 2.0)), out[key])
    info = {"parameter": key, "configured": configured, "baseline_quantile": quantile,
            "used": out[key], "false_alarm": false_alarm, "replicates": REPLICATES,
            "baseline_rows": int(baseline.size)}
    return out, info
