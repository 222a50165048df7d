"""Always-valid (anytime) confidence intervals for the difference in means.

Asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas,
"Time-uniform central limit theory and asymptotic confidence sequences" (2023), built on
the normal-mixture boundary of Howard et al. (2021); the form GrowthBook and Eppo use.

With ``N = n_c + n_t`` units so far, ``se`` the Welch standard error of the difference,
``s2 = se**2 * N`` (the per-unit variance of the difference estimator) and mixing
parameter ``rho``::

    halfwidth = sqrt(s2) * sqrt( 2 (N rho^2 + 1) / (N^2 rho^2) * ln( sqrt(N rho^2 + 1) / alpha ) )

    rho = sqrt( (-2 ln(alpha) + ln(-2 ln(alpha) + 1)) / N* )

``N*`` (the tuning parameter, GrowthBook's default 5000) is the total sample size at
which the sequence is tightest. ``diff +/- halfwidth`` covers the true difference at
every look simultaneously with probability >= 1 - alpha (asymptotically), so it can be
checked daily without inflating the false-positive rate. It is always wider than the
fixed-horizon interval; that is the price of peeking.
"""
from __future__ import annotations

import math

from mlops.constraints import Interval, check, validate
from mlops.errors import ExperimentError


def sequential_rho(alpha: float, tuning: float) -> float:
    """Mixing parameter ``rho`` that makes the sequence tightest at ``N = tuning``."""
    validate(dict(alpha=alpha, sequential_tuning=tuning),
             {"alpha": [Interval(float, 0, 1, closed="neither")],
              "sequential_tuning": [Interval(float, 0, None, closed="neither")]},
             error=ExperimentError)
    log_a = math.log(alpha)
    return math.sqrt((-2 * log_a + math.log(-2 * log_a + 1)) / tuning)


def sequential_halfwidth(se: float, n_total: int, *, alpha: float, tuning: float) -> float:
    """Half-width of the two-sided always-valid interval (see the module docstring).

    >>> round(sequential_halfwidth(0.1, 5000, alpha=0.05, tuning=5000), 4)
    0.3035
    """
    check("n_total", n_total, [Interval(int, 1, None)], error=ExperimentError)
    rho2 = sequential_rho(alpha, tuning) ** 2
    s2 = se * se * n_total
    k = n_total * rho2 + 1
    return math.sqrt(s2) * math.sqrt(2 * k / (n_total ** 2 * rho2) * math.log(math.sqrt(k) / alpha))


def sequential_ci(diff: float, se: float, n_total: int, *, alpha: float,
                  tuning: float) -> tuple[float, float]:
    """``(diff - halfwidth, diff + halfwidth)``: the always-valid interval for the difference."""
    h = sequential_halfwidth(se, n_total, alpha=alpha, tuning=tuning)
    return diff - h, diff + h
