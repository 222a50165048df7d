"""Trust checks around the main comparison: sample ratio mismatch, multiple-testing
correction, and the novelty check (early vs late effect)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as st

from mlops.errors import ExperimentError
from mlops.experiments.comparison import welch
from mlops.experiments.sufficient import SufficientStats

SRM_THRESHOLD = 0.001


def srm(observed: Mapping[str, int], weights: Mapping[str, float], *,
        threshold: float = SRM_THRESHOLD) -> dict[str, Any]:
    """Chi-square goodness of fit of units per variant against the configured weights.

    A p-value below ``threshold`` (0.001) means assignment or logging is broken
    (sample ratio mismatch) and the results must not be trusted.

    >>> out = srm({"a": 5000, "b": 5200}, {"a": 0.5, "b": 0.5})
    >>> out["flagged"], round(out["pvalue"], 3)
    (False, 0.048)
    """
    names = list(weights)
    extra = sorted(set(observed) - set(names))
    if extra:
        raise ExperimentError(f"units were observed in variants {extra} that take no traffic "
                              f"(served variants: {names})", key="stats",
                              fix="check the variant column against the experiment's variants")
    total_w = float(sum(weights.values()))
    counts = np.array([int(observed.get(n, 0)) for n in names], dtype=np.float64)
    total = counts.sum()
    expected = np.array([weights[n] / total_w * total for n in names])
    result: dict[str, Any] = {
        "observed": {n: int(c) for n, c in zip(names, counts)},
        "expected": {n: float(e) for n, e in zip(names, expected)},
        "threshold": threshold,
        "df": len(names) - 1,
    }
    if total == 0:
        return {**result, "chi2": None, "pvalue": None, "flagged": False}
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    pvalue = float(st.chi2.sf(chi2, len(names) - 1))
    return {**result, "chi2": chi2, "pvalue": pvalue, "flagged": pvalue < threshold}


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values.

    NaN p-values (metrics that could not be tested) are left out of the family and stay NaN.

    >>> adjust_pvalues([0.01, 0.04, 0.03], "holm")
    [0.03, 0.06, 0.06]
    >>> [round(p, 4) for p in adjust_pvalues([0.01, 0.04, 0.03], "bh")]
    [0.03, 0.04, 0.04]
    """
    if method not in ("holm", "bh", "none"):
        raise ExperimentError(f"The 'correction' parameter must be a str among {{'holm', 'bh', 'none'}}; "
                              f"got {method!r} instead")
    p = np.asarray(pvalues, dtype=np.float64)
    out = p.copy()
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if method == "none" or m == 0:
        return out.tolist()
    pv = p[valid]
    order = np.argsort(pv, kind="stable")
    ranked = pv[order]
    if method == "holm":
        # step-down: max over j <= i of (m - j + 1) p_(j)
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        # step-up: min over j >= i of m / j * p_(j)
        adj = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    adj = np.minimum(adj, 1.0)
    restored = np.empty(m)
    restored[order] = adj
    out[valid] = restored
    return out.tolist()


def novelty(periods: Sequence[tuple[str, SufficientStats, SufficientStats]], *,
            alpha: float = 0.05) -> dict[str, Any]:
    """Is the effect in the late half of the experiment different from the early half?

    ``periods`` are ``(label, control_stats, treatment_stats)`` in time order (days or
    weeks). The first ``P // 2`` periods form the early half and the last ``P // 2`` the
    late half (the middle period of an odd count is left out). The two effect estimates are
    compared with a z-test on their difference; ``flagged`` when ``p < alpha``: a novelty
    (or primacy) effect, so the long-run effect differs from the average one.
    """
    per_period = []
    for label, c, t in periods:
        entry: dict[str, Any] = {"period": str(label), "control_n": c.n, "treatment_n": t.n}
        if c.n >= 2 and t.n >= 2:
            cmp = welch(c, t, alpha=alpha)
            entry.update(abs_diff=cmp.diff, se=cmp.se, ci=list(cmp.ci))
        else:
            entry.update(abs_diff=None, se=None, ci=None)
        per_period.append(entry)
    half = len(periods) // 2
    result: dict[str, Any] = {"periods": per_period, "available": False, "flagged": False,
                              "early_effect": None, "late_effect": None, "z": None, "pvalue": None}
    if half == 0:
        return {**result, "reason": "needs at least 2 periods"}
    early, late = periods[:half], periods[len(periods) - half:]
    c_early, t_early = _total([p[1] for p in early]), _total([p[2] for p in early])
    c_late, t_late = _total([p[1] for p in late]), _total([p[2] for p in late])
    if min(c_early.n, t_early.n, c_late.n, t_late.n) < 2:
        return {**result, "reason": "too few units in a half"}
    e, lt = welch(c_early, t_early, alpha=alpha), welch(c_late, t_late, alpha=alpha)
    se = math.hypot(e.se, lt.se)
    delta = lt.diff - e.diff
    if se > 0:
        z = delta / se
        pvalue = float(2 * st.norm.sf(abs(z)))
    else:
        z, pvalue = (0.0, 1.0) if delta == 0 else (math.copysign(math.inf, delta), 0.0)
    return {**result, "available": True, "early_effect": e.diff, "late_effect": lt.diff,
            "early_periods": [str(p[0]) for p in early], "late_periods": [str(p[0]) for p in late],
            "difference": delta, "z": z, "pvalue": pvalue, "flagged": pvalue < alpha}


def _total(items: Sequence[SufficientStats]) -> SufficientStats:
    total = items[0]
    for s in items[1:]:
        total = total + s
    return total
