"""Display-only values for analyze.html (forest plot, effect over time, tables) and plan.html."""
from __future__ import annotations

from mlops.reports import svg


def analyze_display(out: dict, spec) -> dict:
    """analyze.html: per-metric rows, forest plot, effect over time, SRM, power, guardrails."""
    rows, forest = [], []
    for name, m in out["metrics"].items():
        for variant, v in m["variants"].items():
            rows.append({"metric": name, "role": m["role"], "direction": m["direction"],
                         "variant": variant, **{k: v.get(k) for k in (
                             "control_mean", "treatment_mean", "abs_diff", "rel_lift",
                             "p_value", "p_value_adjusted", "prob_beat_control", "outcome",
                             "control_n", "treatment_n")},
                         "rel_ci": _ci(v.get("rel_ci")), "abs_ci": _ci(v.get("abs_ci")),
                         "cuped": "yes" if v.get("cuped") else "no"})
            ci = v.get("rel_ci") or [None, None]
            if v.get("rel_lift") is not None and None not in ci:
                forest.append({"label": f"{name} ({variant}, {m['direction']})",
                               "estimate": 100 * v["rel_lift"], "low": 100 * ci[0],
                               "high": 100 * ci[1]})
    charts = {}
    if forest:
        charts["forest"] = svg.forest_plot(forest, xlabel="relative lift vs control (%)")
    nov = out.get("novelty") or {}
    series = {}
    for variant, v in (nov.get("variants") or {}).items():
        periods = v.get("periods") or []
        if periods:
            series[f"{variant} - control"] = [(i + 1, p.get("abs_diff")) for i, p in enumerate(periods)]
            cis = [p.get("ci") or [None, None] for p in periods]
            series[f"{variant}: 95% CI low"] = [(i + 1, ci[0]) for i, ci in enumerate(cis)]
            series[f"{variant}: 95% CI high"] = [(i + 1, ci[1]) for i, ci in enumerate(cis)]
    if series:
        charts["over_time"] = svg.line_chart(
            series, xlabel="week of the experiment",
            ylabel=f"{spec.primary_metric.name}: treatment - control", thresholds=[(0.0, "no effect")])
    srm = out.get("srm") or {}
    cards = [{"label": "decision", "value": out["decision"].replace("_", " "), "status": out["status"]},
             {"label": "SRM p-value", "value": srm.get("pvalue"),
              "status": "fail" if srm.get("flagged") else "ok"},
             {"label": "power achieved", "value": out.get("power_achieved"), "format": "pct"},
             {"label": "units", "value": sum((srm.get("observed") or {}).values())
              if isinstance(srm.get("observed"), dict) else None}]
    power_rows = [{"variant": t, **{k: v.get(k) for k in ("mde_abs", "power_achieved",
                                                           "days_remaining")},
                   "n_required": _fmt_map(v.get("n_required_per_arm")),
                   "n_remaining": _fmt_map(v.get("n_remaining_per_arm"))}
                  for t, v in ((out.get("power") or {}).get("variants") or {}).items()]
    return {"power_rows": power_rows, "metric_rows": rows, "charts": charts, "cards": cards,
            "srm_rows": _srm_rows(srm), "guardrail_rows": out.get("guardrails") or []}


def _ci(ci) -> str:
    if not ci or None in ci:
        return "—"
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def _srm_rows(srm: dict) -> list[dict]:
    obs, exp = srm.get("observed") or {}, srm.get("expected") or {}
    if isinstance(obs, dict):
        return [{"variant": k, "observed": obs[k], "expected": exp.get(k)} for k in obs]
    return []


def _fmt_map(d) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in d.items()) if isinstance(d, dict) else "—"


def plan_cards(out: dict) -> list[dict]:
    """plan.html's cards: units per arm, days, the control's mean and sd."""
    return [{"label": "units per arm", "value": out["units_per_arm"]},
            {"label": "days", "value": out["days"]},
            {"label": "control mean", "value": out["control_mean"]},
            {"label": "control sd", "value": out["control_sd"]}]
