"""``decide``: ship, do not ship, or keep running, with the reasons in plain words.

Rules (in order):

1. Before ``min_duration_days`` (or with ``days_elapsed`` unknown): ``keep_running``.
2. ``ship`` a treatment when its primary metric is significantly better in the metric's
   direction, there is no sample ratio mismatch and none of its guardrails failed. With
   several such treatments the one with the largest improvement is the ``winner``.
3. ``do_not_ship`` when every treatment is significantly worse on the primary metric or
   has a failed guardrail (non-inferiority not shown). A guardrail that could not be
   tested at all (too few units) blocks shipping but does not count as failed.
4. Otherwise ``keep_running``, with the power achieved and the sample still needed.

A novelty flag does not block shipping but is reported as a reason to look closer.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops.errors import ExperimentError


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def decide(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """Decision from an ``analyze`` result: ``{"decision", "winner", "reasons"}``.

    ``decision`` is "ship" | "do_not_ship" | "keep_running"; ``winner`` is the treatment to
    ship (or None); ``reasons`` are sentences for the report.
    """
    try:
        primary = analysis["primary_metric"]
        per_variant = analysis["metrics"][primary]["variants"]
        direction = analysis["metrics"][primary]["direction"]
        srm_info, guardrails = analysis["srm"], analysis["guardrails"]
        duration, power = analysis["duration"], analysis["power"]
    except (KeyError, TypeError) as exc:
        raise ExperimentError(f"decide needs an analyze() result; missing field {exc}",
                              key="analysis", fix="pass the dict returned by analyze()") from None
    reasons = _srm_reasons(srm_info)
    failed, unverified = _guardrail_reasons(guardrails, reasons)
    if (analysis.get("novelty") or {}).get("flagged"):
        reasons.append(f"Novelty check: the effect on '{primary}' differs between the early and "
                       "late periods; the long-run effect may differ from the average.")
    better, worse = _primary_reasons(per_variant, primary, analysis.get("alpha", 0.05), reasons)
    if not duration.get("reached"):
        elapsed = duration.get("days_elapsed")
        seen = "unknown" if elapsed is None else f"{elapsed:g}"
        reasons.insert(0, f"Minimum duration not reached ({seen} of {duration['min_duration_days']:g} "
                          "days): no decision before then.")
        return {"decision": "keep_running", "winner": None, "reasons": reasons}
    shippable = [v for v in better
                 if v not in failed and v not in unverified and not srm_info.get("flagged")]
    if shippable:
        sign = 1.0 if direction == "increase" else -1.0

        def gain(v: str) -> float:
            e = per_variant[v]
            return sign * (e["rel_lift"] if e["rel_lift"] is not None else e["abs_diff"])

        winner = max(shippable, key=gain)
        reasons.insert(0, f"Ship '{winner}': '{primary}' improved significantly, no sample ratio "
                          "mismatch and all guardrails passed.")
        return {"decision": "ship", "winner": winner, "reasons": reasons}
    if per_variant and all(v in worse or v in failed for v in per_variant):
        reasons.insert(0, "Do not ship: every treatment is significantly worse on the primary "
                          "metric or failed a guardrail.")
        return {"decision": "do_not_ship", "winner": None, "reasons": reasons}
    reasons += _power_reasons(power)
    reasons.insert(0, "Keep running: no treatment can be shipped or ruled out yet.")
    return {"decision": "keep_running", "winner": None, "reasons": reasons}


def _srm_reasons(srm_info: Mapping[str, Any]) -> list[str]:
    if not srm_info.get("flagged"):
        return []
    return [f"Sample ratio mismatch (chi2={_fmt(srm_info['chi2'])}, p={_fmt(srm_info['pvalue'])} < "
            f"{srm_info['threshold']}): observed {srm_info['observed']} vs expected "
            f"{ {k: round(v, 1) for k, v in srm_info['expected'].items()} }. Assignment or logging "
            "is broken; the results cannot be trusted until it is fixed."]


def _guardrail_reasons(guardrails: list, reasons: list[str]
                       ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(failed, unverified) guardrail metrics per variant; their reasons appended."""
    failed: dict[str, list[str]] = {}
    unverified: dict[str, list[str]] = {}
    for g in guardrails:
        if g["passed"]:
            continue
        if g["status"] != "ok":
            # No test could be run (too few units, or a relative margin on a zero control
            # mean): this blocks shipping but is no evidence of harm.
            unverified.setdefault(g["variant"], []).append(g["metric"])
            reasons.append(f"Guardrail '{g['metric']}' could not be checked for '{g['variant']}' "
                           f"({g['status'].replace('_', ' ')}); shipping needs it checked.")
            continue
        failed.setdefault(g["variant"], []).append(g["metric"])
        reasons.append(
            f"Guardrail '{g['metric']}' failed for '{g['variant']}': non-inferiority within a "
            f"{g['margin_type']} margin of {g['margin']} not shown (estimate {_fmt(g['estimate'])}, "
            f"one-sided bound {_fmt(g['bound'])} vs threshold {_fmt(g['threshold'])}, "
            f"p={_fmt(g['p_value'])}).")
    return failed, unverified


def _primary_reasons(per_variant: Mapping[str, Any], primary: str, alpha: float,
                     reasons: list[str]) -> tuple[list[str], list[str]]:
    """(better, worse) treatments on the primary metric; one reason each appended."""
    better, worse = [], []
    for name, e in per_variant.items():
        label = f"'{name}' vs control on '{primary}'"
        if e["status"] != "ok":
            reasons.append(f"{label}: not enough data yet.")
            continue
        summary = (f"diff {_fmt(e['abs_diff'])} (CI {_fmt(e['abs_ci'][0])} to {_fmt(e['abs_ci'][1])}), "
                   f"lift {_pct(e['rel_lift'])}, adjusted p={_fmt(e['p_value_adjusted'])}")
        if e["outcome"] == "better":
            better.append(name)
            reasons.append(f"{label}: significantly better ({summary}).")
        elif e["outcome"] == "worse":
            worse.append(name)
            reasons.append(f"{label}: significantly worse ({summary}).")
        elif e.get("sequential_ci") and e["p_value_adjusted"] is not None \
                and e["p_value_adjusted"] < alpha:
            lo, hi = e["sequential_ci"]
            reasons.append(f"{label}: significant at a fixed horizon but the always-valid interval "
                           f"({_fmt(lo)} to {_fmt(hi)}) still contains 0 ({summary}).")
        else:
            reasons.append(f"{label}: no significant difference ({summary}).")
    return better, worse


def _power_reasons(power: Mapping[str, Any]) -> list[str]:
    """What keeps a test running: the power achieved and the units still needed."""
    out = []
    for name, p in (power.get("variants") or {}).items():
        if p.get("power_achieved") is None:
            continue
        remaining = ", ".join(f"{k}: {v}" for k, v in (p.get("n_remaining_per_arm") or {}).items())
        days = p.get("days_remaining")
        out.append(
            f"Power for '{name}' to detect an effect of {_fmt(p['mde_abs'])} "
            f"({power['mde_type']} mde {power['mde']}) is {_pct(p['power_achieved'])} "
            f"(target {_pct(power['target_power'])}); more units needed per arm: {remaining}"
            + (f" (~{days} more days at the current rate)." if days is not None else "."))
    return out
