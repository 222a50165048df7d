"""``analyze``: every statistic of an experiment, as one JSON-safe dict (analyze.json).

Each treatment is compared with the control on every metric. Field names:

- ``metrics[<metric>]``: ``role`` (primary|secondary), ``direction``, ``cuped``,
  ``variants[<treatment>]``: ``status`` (ok|insufficient_data), ``control_mean``,
  ``treatment_mean``, ``control_n``, ``treatment_n``, ``abs_diff``, ``abs_ci`` [lo, hi],
  ``rel_lift``, ``rel_ci``, ``se``, ``df``, ``p_value``, ``p_value_adjusted``,
  ``significant``, ``outcome`` (better|worse|inconclusive), ``prob_beat_control``,
  ``sequential_ci`` ([lo, hi] or null), ``cuped``, ``cuped_theta``, ``variance_reduction``.
- ``srm``: ``chi2``, ``pvalue``, ``flagged``, ``threshold``, ``df``, ``observed``, ``expected``.
- ``guardrails``: list of ``metric``, ``variant``, ``direction``, ``margin``, ``margin_type``,
  ``estimate``, ``bound``, ``threshold``, ``p_value``, ``passed``, ``status``.
- ``novelty``: ``metric``, ``variants[<treatment>]`` (see ``checks.novelty``) or ``available: false``.
- ``power``: per treatment ``mde_abs``, ``power_achieved``, ``n_required_per_arm``,
  ``n_remaining_per_arm``, ``days_remaining``; ``power_achieved`` is the smallest of them.
- ``duration``: ``days_elapsed``, ``min_duration_days``, ``reached``.
- ``decision``, ``winner``, ``reasons``: from ``decide``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops.errors import ExperimentError
from mlops.experiments.checks import adjust_pvalues, novelty, srm
from mlops.experiments.comparison import Comparison, non_inferiority, welch
from mlops.experiments.cuped import cuped_compare
from mlops.experiments.decision import decide
from mlops.experiments.power import n_required, power_at
from mlops.experiments.sequential import sequential_ci
from mlops.experiments.spec import ExperimentSpec
from mlops.experiments.sufficient import SufficientStats

StatsTable = Mapping[str, Mapping[str, SufficientStats | Mapping[str, Any]]]
_EMPTY = SufficientStats(0, 0.0, 0.0)


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, tuples -> lists (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _normalise(spec: ExperimentSpec, stats: StatsTable,
               where: str = "stats") -> dict[str, dict[str, SufficientStats]]:
    """Served variants x spec metrics, as SufficientStats; missing arms become empty."""
    if not isinstance(stats, Mapping):
        raise ExperimentError(f"{where} must be a dict {{variant: {{metric: SufficientStats}}}}; "
                              f"got {type(stats).__name__}", key=where)
    served = [v.name for v in spec.served_variants]
    shadows = {v.name for v in spec.shadow_variants}
    unknown = sorted(set(stats) - set(served) - shadows)
    if unknown:
        raise ExperimentError(f"{where} has variants {unknown} that are not in the experiment "
                              f"(served variants: {served})", key=where,
                              fix="check the variant column and the experiment's variants")
    out: dict[str, dict[str, SufficientStats]] = {}
    for v in served:
        per = stats.get(v)
        if per is None:
            out[v] = {m: _EMPTY for m in spec.metric_names}
            continue
        missing = [m for m in spec.metric_names if m not in per]
        if missing:
            raise ExperimentError(f"{where}[{v!r}] lacks metrics {missing}; it has {sorted(per)}",
                                  key=where, fix="aggregate every metric the experiment names")
        out[v] = {m: SufficientStats.from_dict(per[m]) for m in spec.metric_names}
    return out


def _compare(spec: ExperimentSpec, table: dict[str, dict[str, SufficientStats]], metric: str,
             treatment: str) -> tuple[Comparison | None, dict[str, Any]]:
    c, t = table[spec.control][metric], table[treatment][metric]
    extra: dict[str, Any] = {"cuped": False, "cuped_theta": None, "variance_reduction": None}
    if c.n < 2 or t.n < 2:
        return None, extra
    arms = {v: table[v][metric] for v in table}
    if spec.cuped_covariate and all(s.has_covariate for s in arms.values()):
        cmp, theta, reduction = cuped_compare(spec.control, treatment, arms, alpha=spec.alpha)
        extra.update(cuped=True, cuped_theta=theta, variance_reduction=reduction)
        return cmp, extra
    return welch(c, t, alpha=spec.alpha), extra


def _metric_entry(spec: ExperimentSpec, table, metric: str, direction: str, treatment: str) -> dict[str, Any]:
    c, t = table[spec.control][metric], table[treatment][metric]
    cmp, extra = _compare(spec, table, metric, treatment)
    entry: dict[str, Any] = {"control_mean": c.mean, "treatment_mean": t.mean,
                             "control_n": c.n, "treatment_n": t.n, **extra}
    if cmp is None:
        return {"status": "insufficient_data", **entry, "abs_diff": None, "abs_ci": None,
                "rel_lift": None, "rel_ci": None, "se": None, "df": None, "p_value": None,
                "p_value_adjusted": None, "significant": False, "outcome": "inconclusive",
                "prob_beat_control": None, "sequential_ci": None}
    seq = None
    if spec.sequential:
        seq = list(sequential_ci(cmp.diff, cmp.se, c.n + t.n, alpha=spec.alpha,
                                 tuning=spec.sequential_tuning))
    return {"status": "ok", **entry, "abs_diff": cmp.diff, "abs_ci": list(cmp.ci),
            "rel_lift": cmp.rel, "rel_ci": list(cmp.rel_ci), "se": cmp.se, "df": cmp.df,
            "p_value": cmp.p_value, "p_value_adjusted": None, "significant": False,
            "outcome": "inconclusive", "prob_beat_control": cmp.prob_beat_control(direction),
            "sequential_ci": seq}


def _finish_significance(spec: ExperimentSpec, entries: list[tuple[dict[str, Any], str]]) -> None:
    """Adjust one family of p-values and set significant/outcome on each entry."""
    raw = [e["p_value"] if e["p_value"] is not None else math.nan for e, _ in entries]
    adjusted = adjust_pvalues(raw, spec.correction)
    for (entry, direction), p_adj in zip(entries, adjusted):
        if entry["status"] != "ok":
            continue
        entry["p_value_adjusted"] = p_adj
        significant = p_adj < spec.alpha
        if spec.sequential:
            lo, hi = entry["sequential_ci"]
            # Under continuous monitoring only the always-valid interval is trustworthy.
            significant = significant and (lo > 0 or hi < 0)
        entry["significant"] = bool(significant)
        good = entry["abs_diff"] > 0 if direction == "increase" else entry["abs_diff"] < 0
        entry["outcome"] = ("better" if good else "worse") if significant else "inconclusive"


def _guardrails(spec: ExperimentSpec, table) -> list[dict[str, Any]]:
    out = []
    for g in spec.guardrails:
        for treatment in spec.treatments:
            base = {"metric": g.name, "variant": treatment, "direction": g.direction,
                    "margin": g.margin, "margin_type": g.margin_type}
            cmp, _ = _compare(spec, table, g.name, treatment)
            if cmp is None:
                out.append({**base, "status": "insufficient_data", "estimate": None, "bound": None,
                            "threshold": None, "p_value": None, "passed": False})
                continue
            ni = non_inferiority(cmp, direction=g.direction, margin=g.margin,
                                 margin_type=g.margin_type, alpha=spec.alpha)
            status = "ok" if not math.isnan(ni.estimate) else "undefined_relative_lift"
            out.append({**base, "status": status, "estimate": ni.estimate, "bound": ni.bound,
                        "threshold": ni.threshold, "p_value": ni.p_value, "passed": ni.passed})
    return out


def _power(spec: ExperimentSpec, table, days_elapsed: float | None) -> dict[str, Any]:
    metric = spec.primary_metric.name
    c = table[spec.control][metric]
    weights = spec.weights
    total_units = sum(table[v][metric].n for v in table)
    per_variant = {}
    for treatment in spec.treatments:
        t = table[treatment][metric]
        entry: dict[str, Any] = {"mde_abs": None, "power_achieved": None, "n_required_per_arm": None,
                                 "n_remaining_per_arm": None, "days_remaining": None}
        if c.n >= 2 and t.n >= 2:
            mde_abs = spec.mde * abs(c.mean) if spec.mde_type == "relative" else spec.mde
            if mde_abs > 0:
                var_c, var_t = c.variance, t.variance
                ratio = weights[treatment] / weights[spec.control]
                n_c = math.ceil(n_required(mde_abs, var_c, var_t, alpha=spec.alpha, power=spec.power,
                                           ratio=ratio))
                need = {spec.control: n_c, treatment: math.ceil(ratio * n_c)}
                remaining = {v: max(0, n - table[v][metric].n) for v, n in need.items()}
                days = None
                if days_elapsed and days_elapsed > 0 and total_units > 0:
                    daily = total_units / days_elapsed
                    days = max(remaining[v] / (daily * weights[v]) for v in need)
                entry.update(mde_abs=mde_abs, power_achieved=power_at(
                    mde_abs, c.n, var_c, t.n, var_t, alpha=spec.alpha),
                    n_required_per_arm=need, n_remaining_per_arm=remaining,
                    days_remaining=None if days is None else math.ceil(days))
        per_variant[treatment] = entry
    achieved = [e["power_achieved"] for e in per_variant.values() if e["power_achieved"] is not None]
    return {"metric": metric, "mde": spec.mde, "mde_type": spec.mde_type, "target_power": spec.power,
            "variants": per_variant, "power_achieved": min(achieved) if achieved else None}


def _novelty(spec: ExperimentSpec, per_period: Mapping[str, StatsTable] | None) -> dict[str, Any]:
    metric = spec.primary_metric.name
    if not per_period:
        return {"metric": metric, "available": False, "flagged": False, "variants": {}}
    tables = {str(label): _normalise(spec, period, f"per_period[{label!r}]")
              for label, period in per_period.items()}
    variants = {}
    for treatment in spec.treatments:
        periods = [(label, tab[spec.control][metric], tab[treatment][metric])
                   for label, tab in tables.items()]
        variants[treatment] = novelty(periods, alpha=spec.alpha)
    return {"metric": metric, "available": any(v["available"] for v in variants.values()),
            "flagged": any(v["flagged"] for v in variants.values()), "variants": variants}


def analyze(spec: ExperimentSpec, stats: StatsTable, *, per_period: Mapping[str, StatsTable] | None = None,
            days_elapsed: float | None = None) -> dict[str, Any]:
    """Analyse an experiment from per-variant sufficient statistics; returns analyze.json.

    ``stats`` is ``{variant: {metric: SufficientStats (or its dict)}}`` as produced by
    ``aggregate_units``; shadow variants in it are ignored. ``per_period`` is
    ``{period_label: stats}`` in time order (for the novelty check); ``days_elapsed``
    gates shipping on ``spec.min_duration_days`` (unknown = not reached, unless the
    minimum is 0). Each treatment is compared with the control. p-values are adjusted
    (``spec.correction``) within two families: the primary metric across treatments, and
    all secondary metrics across treatments. With ``spec.sequential`` a result is
    significant only if the always-valid interval excludes 0 as well. Guardrails and the
    novelty check (primary metric only) use fixed-horizon tests.
    """
    _check_args(spec, days_elapsed)
    table = _normalise(spec, stats)
    primary = spec.primary_metric
    observed = {v: table[v][primary.name].n for v in table}
    reached = spec.min_duration_days == 0 or (days_elapsed is not None
                                              and days_elapsed >= spec.min_duration_days)
    result: dict[str, Any] = {
        "experiment": spec.key, "name": spec.name, "seed": spec.seed, "unit": spec.unit,
        "fingerprint": spec.fingerprint(), "control": spec.control, "treatments": spec.treatments,
        "primary_metric": primary.name, "alpha": spec.alpha, "correction": spec.correction,
        "sequential": {"enabled": spec.sequential, "tuning": spec.sequential_tuning},
        "shadow_variants": [v.name for v in spec.shadow_variants],
        "srm": srm(observed, spec.weights),
        "metrics": _metrics(spec, table),
        "guardrails": _guardrails(spec, table),
        "novelty": _novelty(spec, per_period),
        "power": _power(spec, table, days_elapsed),
        "duration": {"days_elapsed": days_elapsed, "min_duration_days": spec.min_duration_days,
                     "reached": reached},
    }
    result["power_achieved"] = result["power"]["power_achieved"]
    result = _json_safe(result)
    result.update(decide(result))
    return result


def _check_args(spec: ExperimentSpec, days_elapsed: float | None) -> None:
    if not isinstance(spec, ExperimentSpec):
        raise ExperimentError(f"spec must be an ExperimentSpec; got {type(spec).__name__}", key="spec")
    bad_days = (isinstance(days_elapsed, bool)
                or not isinstance(days_elapsed, (int, float, np.number)) or not days_elapsed >= 0)
    if days_elapsed is not None and bad_days:
        raise ExperimentError(f"The 'days_elapsed' parameter must be a number >= 0 or None; "
                              f"got {days_elapsed!r} instead")


def _metrics(spec: ExperimentSpec, table) -> dict[str, Any]:
    """Every treatment against the control on the primary and secondary metrics, p-values
    adjusted within two families (primary across treatments; all secondaries)."""
    metrics: dict[str, Any] = {}
    families: dict[str, list[tuple[dict[str, Any], str]]] = {"primary": [], "secondary": []}
    roles = [("primary", spec.primary_metric)] + [("secondary", m) for m in spec.secondary_metrics]
    for role, metric in roles:
        variants = {}
        for treatment in spec.treatments:
            entry = _metric_entry(spec, table, metric.name, metric.direction, treatment)
            variants[treatment] = entry
            families[role].append((entry, metric.direction))
        metrics[metric.name] = {"role": role, "direction": metric.direction,
                                "cuped": any(e["cuped"] for e in variants.values()),
                                "variants": variants}
    for family in families.values():
        _finish_significance(spec, family)
    return metrics


STATUS = {"ship": "ok", "do_not_ship": "fail", "keep_running": "warn"}


@dataclass
class AnalyzeResult:
    """``action=analyze``'s result; :meth:`to_json` is ``analyze.json``."""

    analysis: dict        # :func:`analyze`'s dict (decision, winner, reasons, ...)
    primary_metric: str
    outcomes: dict
    weights_guard: dict
    duration_s: float

    @property
    def decision(self) -> str:
        return self.analysis["decision"]

    def to_json(self) -> dict:
        reasons = self.analysis["reasons"]
        headline = f"{self.decision.replace('_', ' ')}: " + (reasons[0] if reasons
                                                             else self.primary_metric)
        return {**self.analysis, "status": STATUS[self.decision], "headline": headline,
                "outcomes": self.outcomes, "weights_guard": self.weights_guard,
                "duration_s": self.duration_s}
