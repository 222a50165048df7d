"""Treatment vs control on one metric: Welch t-test, relative lift, chance to beat control,
and the one-sided non-inferiority test used by guardrails.

Everything is computed from per-arm moments (mean, sample variance, n), which come from
``SufficientStats`` or from CUPED-adjusted moments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as st

from mlops.errors import ExperimentError
from mlops.experiments.sufficient import SufficientStats


@dataclass(frozen=True)
class Comparison:
    """Welch comparison of a treatment arm against the control arm.

    ``diff = m_t - m_c``; ``rel = diff / |m_c|`` with delta-method ``rel_se``;
    both intervals use Student t quantiles at the Welch-Satterthwaite ``df``.
    ``rel``, ``rel_se`` and ``rel_ci`` are NaN when the control mean is 0.
    """

    control_mean: float
    treatment_mean: float
    control_var: float
    treatment_var: float
    control_n: int
    treatment_n: int
    alpha: float
    diff: float
    se: float
    df: float
    t_stat: float
    p_value: float
    ci: tuple[float, float]
    rel: float
    rel_se: float
    rel_ci: tuple[float, float]

    def prob_beat_control(self, direction: str = "increase") -> float:
        """P(treatment better than control): normal approximation, flat prior.

        ``Phi(diff / se)`` for "increase" metrics, ``Phi(-diff / se)`` for "decrease".
        """
        sign = 1.0 if direction == "increase" else -1.0
        if self.se == 0:
            return 0.5 if self.diff == 0 else float(sign * self.diff > 0)
        return float(st.norm.cdf(sign * self.diff / self.se))


def welch_df(var_c: float, n_c: int, var_t: float, n_t: int) -> float:
    """Welch-Satterthwaite degrees of freedom; ``n_c + n_t - 2`` when both variances are 0."""
    a, b = var_t / n_t, var_c / n_c
    denom = a * a / (n_t - 1) + b * b / (n_c - 1)
    if denom == 0:
        return float(n_c + n_t - 2)
    return (a + b) ** 2 / denom


def compare_moments(control_mean: float, control_var: float, control_n: int,
                    treatment_mean: float, treatment_var: float, treatment_n: int,
                    *, alpha: float = 0.05) -> Comparison:
    """Welch t-test, CIs and relative lift from per-arm mean, variance (ddof=1) and n."""
    if control_n < 2 or treatment_n < 2:
        raise ExperimentError(
            f"each arm needs at least 2 units; got control n={control_n}, treatment n={treatment_n}",
            key="stats", fix="wait for more data")
    if not 0 < alpha < 1:
        raise ExperimentError(f"The 'alpha' parameter must be in (0, 1); got {alpha!r} instead")
    diff = treatment_mean - control_mean
    var_diff = treatment_var / treatment_n + control_var / control_n
    se = math.sqrt(var_diff)
    df = welch_df(control_var, control_n, treatment_var, treatment_n)
    crit = float(st.t.ppf(1 - alpha / 2, df))
    if se > 0:
        t_stat = diff / se
        p_value = float(2 * st.t.sf(abs(t_stat), df))
    else:
        # No spread at all: any difference is certain, no difference is no evidence.
        t_stat = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        p_value = 1.0 if diff == 0 else 0.0
    ci = (diff - crit * se, diff + crit * se)
    if control_mean != 0:
        rel = diff / abs(control_mean)
        # Delta method for (m_t - m_c) / |m_c| = m_t/|m_c| - sign(m_c).
        rel_var = (treatment_var / treatment_n) / control_mean ** 2 \
            + (control_var / control_n) * treatment_mean ** 2 / control_mean ** 4
        rel_se = math.sqrt(rel_var)
        rel_ci = (rel - crit * rel_se, rel + crit * rel_se)
    else:
        rel = rel_se = math.nan
        rel_ci = (math.nan, math.nan)
    return Comparison(control_mean, treatment_mean, control_var, treatment_var, control_n,
                      treatment_n, alpha, diff, se, df, t_stat, p_value, ci, rel, rel_se, rel_ci)


def welch(control: SufficientStats, treatment: SufficientStats, *, alpha: float = 0.05) -> Comparison:
    """Welch t-test of treatment vs control from sufficient statistics.

    Matches ``scipy.stats.ttest_ind(t, c, equal_var=False)`` on the raw values.

    >>> c = SufficientStats.from_values([1.0, 2.0, 3.0, 4.0])
    >>> t = SufficientStats.from_values([2.0, 3.0, 4.0, 5.0])
    >>> round(welch(c, t).p_value, 4)
    0.3153
    """
    return compare_moments(control.mean, control.variance, control.n,
                           treatment.mean, treatment.variance, treatment.n, alpha=alpha)


@dataclass(frozen=True)
class NonInferiority:
    """One-sided non-inferiority test of a guardrail metric.

    ``estimate`` is the difference (absolute margin) or relative lift (relative margin);
    ``bound`` is the one-sided (1 - alpha) confidence bound on the *bad* side, in the same
    units. The guardrail passes when ``p_value < alpha`` (equivalently: ``bound`` is on the
    good side of ``-margin`` for "increase" metrics, ``+margin`` for "decrease" metrics).
    """

    estimate: float
    se: float
    bound: float
    threshold: float
    t_stat: float
    p_value: float
    passed: bool


def non_inferiority(cmp: Comparison, *, direction: str, margin: float, margin_type: str,
                    alpha: float) -> NonInferiority:
    """H0: the treatment is worse than control by at least ``margin`` in the bad direction.

    For an "increase" metric (higher is better) H0 is ``delta <= -margin``; for a
    "decrease" metric (lower is better) H0 is ``delta >= +margin``. ``delta`` is the
    absolute difference or, for ``margin_type="relative"``, the relative lift with its
    delta-method standard error. Welch df in both cases.
    """
    if margin_type == "absolute":
        estimate, se = cmp.diff, cmp.se
    else:
        estimate, se = cmp.rel, cmp.rel_se
    sign = 1.0 if direction == "increase" else -1.0
    threshold = -sign * margin
    if math.isnan(estimate):
        return NonInferiority(estimate, se, math.nan, threshold, math.nan, math.nan, False)
    # Distance from the H0 boundary measured in the good direction.
    distance = sign * estimate + margin
    crit = float(st.t.ppf(1 - alpha, cmp.df))
    bound = estimate - sign * crit * se
    if se > 0:
        t_stat = distance / se
        p_value = float(st.t.sf(t_stat, cmp.df))
    else:
        t_stat = math.copysign(math.inf, distance) if distance else 0.0
        p_value = 0.0 if distance > 0 else 1.0
    return NonInferiority(estimate, se, bound, threshold, t_stat, p_value, p_value < alpha)
