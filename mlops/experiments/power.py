"""Power analysis (normal approximation): sample size, minimum detectable effect, duration.

For a difference in means with per-arm variances ``var_c``, ``var_t``, treatment/control
size ratio ``r`` and ``z = z_{1-alpha/2} + z_{power}`` (``z_{1-alpha}`` one-sided)::

    n_control = z**2 * (var_c + var_t / r) / mde**2,     n_treatment = r * n_control

Continuous metrics give one ``sd`` for both arms; proportions give the ``baseline_rate``
``p`` and use ``var_c = p(1-p)``, ``var_t = (p+mde)(1-p-mde)``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import optimize
from scipy import stats as st

from mlops.constraints import Interval, check, validate
from mlops.errors import ExperimentError

_UNIT_OPEN = Interval(float, 0, 1, closed="neither")
_POSITIVE = Interval(float, 0, None, closed="neither")
_PARAMETER_CONSTRAINTS = {"alpha": [_UNIT_OPEN], "power": [_UNIT_OPEN], "ratio": [_POSITIVE]}


def _check(alpha: float, power: float, ratio: float) -> None:
    validate(dict(alpha=alpha, power=power, ratio=ratio), _PARAMETER_CONSTRAINTS,
             error=ExperimentError)


def z_total(alpha: float, power: float, two_sided: bool = True) -> float:
    """``z_{1-alpha/2} + z_{power}`` (or ``z_{1-alpha}`` when one-sided)."""
    z_a = st.norm.ppf(1 - alpha / 2) if two_sided else st.norm.ppf(1 - alpha)
    return float(z_a + st.norm.ppf(power))


def _variances(mde: float, sd: float | None, baseline_rate: float | None) -> tuple[float, float]:
    if (sd is None) == (baseline_rate is None):
        raise ExperimentError("give exactly one of 'sd' (continuous metric) or 'baseline_rate' "
                              f"(proportion); got sd={sd!r}, baseline_rate={baseline_rate!r}")
    if sd is not None:
        check("sd", sd, [_POSITIVE], error=ExperimentError)
        return sd * sd, sd * sd
    p = baseline_rate
    check("baseline_rate", p, [_UNIT_OPEN], error=ExperimentError)
    q = p + mde
    if not 0 < q < 1:
        raise ExperimentError(f"baseline_rate + mde must stay in (0, 1); got {p!r} + {mde!r} = {q!r}",
                              key="mde", fix="use a smaller mde (it is absolute, not relative)")
    return p * (1 - p), q * (1 - q)


def n_required(mde: float, var_c: float, var_t: float, *, alpha: float, power: float,
               two_sided: bool = True, ratio: float = 1.0) -> float:
    """Control-arm units (unrounded) to detect an absolute ``mde`` with the given variances."""
    return z_total(alpha, power, two_sided) ** 2 * (var_c + var_t / ratio) / (mde * mde)


def sample_size(mde: float, alpha: float = 0.05, power: float = 0.8, sd: float | None = None, *,
                baseline_rate: float | None = None, two_sided: bool = True, ratio: float = 1.0) -> int:
    """Units per arm (the control arm; the treatment arm needs ``ratio`` times as many).

    ``mde`` is absolute (metric units; for proportions, percentage points as a fraction).

    >>> sample_size(0.1, sd=1.0)
    1570
    >>> sample_size(0.01, baseline_rate=0.10)
    14749
    """
    _check(alpha, power, ratio)
    check("mde", mde, [_POSITIVE], error=ExperimentError)
    var_c, var_t = _variances(mde, sd, baseline_rate)
    return max(2, math.ceil(n_required(mde, var_c, var_t, alpha=alpha, power=power,
                                       two_sided=two_sided, ratio=ratio) - 1e-9))


def mde_for(n_per_arm: float, alpha: float = 0.05, power: float = 0.8, sd: float | None = None, *,
            baseline_rate: float | None = None, two_sided: bool = True, ratio: float = 1.0) -> float:
    """Smallest absolute effect detectable with ``n_per_arm`` control units (inverse of sample_size).

    >>> round(mde_for(1570, sd=1.0), 4)
    0.1
    """
    _check(alpha, power, ratio)
    check("n_per_arm", n_per_arm, [_POSITIVE], error=ExperimentError)
    z = z_total(alpha, power, two_sided)
    if sd is not None or baseline_rate is None:
        _variances(0.0, sd, baseline_rate)  # validates sd (or reports that both/neither were given)
        return z * sd * math.sqrt(1 / n_per_arm + 1 / (ratio * n_per_arm))
    p = baseline_rate
    check("baseline_rate", p, [_UNIT_OPEN], error=ExperimentError)

    def gap(d: float) -> float:
        q = p + d
        return d - z * math.sqrt(p * (1 - p) / n_per_arm + q * (1 - q) / (ratio * n_per_arm))

    hi = 1 - p - 1e-12
    if gap(hi) <= 0:
        raise ExperimentError(f"no effect up to {hi:.4f} is detectable with n_per_arm={n_per_arm!r}",
                              key="n_per_arm", fix="increase the sample size")
    return float(optimize.brentq(gap, 1e-15, hi, xtol=1e-14))


def power_at(mde: float, n_c: float, var_c: float, n_t: float, var_t: float, *, alpha: float,
             two_sided: bool = True) -> float:
    """Probability of a significant result when the true absolute effect is ``mde``."""
    se = math.sqrt(var_c / n_c + var_t / n_t)
    if se == 0:
        return 1.0
    z_a = st.norm.ppf(1 - alpha / 2) if two_sided else st.norm.ppf(1 - alpha)
    shift = abs(mde) / se
    out = st.norm.cdf(shift - z_a)
    if two_sided:
        out += st.norm.cdf(-shift - z_a)
    return float(out)


def duration_days(n_per_arm: float, daily_units: float, *, weights: Sequence[float] = (0.5, 0.5)) -> int:
    """Days until every arm has ``n_per_arm`` units, given ``daily_units`` entering the
    experiment per day split by ``weights`` (the smallest arm is the bottleneck).

    >>> duration_days(1570, 1000)
    4
    """
    check("daily_units", daily_units, [_POSITIVE], error=ExperimentError)
    if not weights or min(weights) <= 0:
        raise ExperimentError(f"The 'weights' parameter must be positive traffic shares; got {weights!r}")
    share = min(weights) / sum(weights)
    return max(1, math.ceil(n_per_arm / (daily_units * share) - 1e-9))


def experiment_plan(spec, stats: dict, *, daily_units: float) -> dict:
    """``action=plan``: units per arm and days to detect the spec's MDE on its primary
    metric, from the control's mean and variance in ``stats`` (``{variant: {metric:
    SufficientStats}}``); ``daily_units`` (0: unknown) gives the duration."""
    ctrl = stats[spec.control][spec.primary_metric.name]
    mde_abs = spec.mde * abs(ctrl.mean) if spec.mde_type == "relative" else spec.mde
    if mde_abs <= 0:
        raise ExperimentError("the MDE is 0 in metric units (control mean is 0?)",
                              key="experiment.mde", fix="use mde_type: absolute")
    n = sample_size(mde_abs, spec.alpha, spec.power, ctrl.variance ** 0.5)
    days = duration_days(n, daily_units, weights=[v.weight for v in spec.served_variants]) \
        if daily_units > 0 else None
    days = max(days, spec.min_duration_days) if days is not None else None
    headline = (f"{n:,} units per arm to detect a {spec.mde:g}"
                f"{' relative' if spec.mde_type == 'relative' else ''} change in "
                f"{spec.primary_metric.name} (alpha {spec.alpha}, power {spec.power})"
                + (f": about {days:g} days at {daily_units:,.0f} units/day" if days else ""))
    return {"status": "ok", "headline": headline, "experiment": spec.key,
            "metric": spec.primary_metric.name, "control_mean": ctrl.mean,
            "control_sd": ctrl.variance ** 0.5, "mde": spec.mde, "mde_type": spec.mde_type,
            "mde_abs": mde_abs, "alpha": spec.alpha, "power": spec.power,
            "units_per_arm": n, "daily_units": daily_units, "days": days,
            "min_duration_days": spec.min_duration_days}
