"""Scores and the markdown table of ``bench_alarms.py`` (from per-window verdicts)."""
from __future__ import annotations

from alarms_shift import MAX_DELAY, MAX_FALSE_ALARM_RATE, Score, score, targets

JUDGMENTS = {  # judgment -> how the table names it
    "data_drift": "data drift",
    "concept_drift": "concept drift: performance drop",
    "detectors": "concept drift: streaming detectors",
    "breaker": "circuit breaker (replay)",
}
SIDES = ("ours", "nannyml", "evidently")
NAMES = {"ours": "ours", "nannyml": "NannyML", "evidently": "Evidently"}


def side_calls(result: dict, side: str, judgment: str) -> dict[str, list] | None:
    """Per-scenario verdicts of one side for one judgment, or None (skipped / not offered)."""
    calls = {}
    for scenario, sides in result["scenarios"].items():
        found = sides.get(side) or {}
        if "skipped" in found or judgment not in found or all(v is None for v in found[judgment]):
            return None
        calls[scenario] = found[judgment]
    return calls


def score_dataset(result: dict) -> dict:
    """``scores`` (judgment -> side -> Score dict or None) and ``targets`` (judgment -> ...)."""
    scores, goals = {}, {}
    for judgment in JUDGMENTS:
        per_side: dict[str, Score | None] = {}
        for side in SIDES:
            calls = side_calls(result, side, judgment)
            per_side[side] = None if calls is None else score(judgment, calls, result["shift_index"])
        scores[judgment] = {s: (v.as_dict() if v else None) for s, v in per_side.items()}
        ours = per_side["ours"]
        goals[judgment] = None if ours is None else targets(
            ours, [v for s, v in per_side.items() if s != "ours" and v is not None])
    return {"scores": scores, "targets": goals}


def _cell(s: dict | None) -> tuple[str, str]:
    if s is None:
        return "n/a", "n/a"
    rate = s["false_alarm_rate"]
    fa = "n/a" if rate is None else f"{rate:.0%} ({s['false_alarms']}/{s['opportunities']})"
    if s.get("undecided"):
        fa += f", {s['undecided']} undecided"
    delay = "never" if s["delay"] is None else str(s["delay"])
    if not s.get("shifted"):
        return fa, delay
    return fa, f"{delay} ({s['hits']}/{s['shifted']} shifted; {s.get('unshifted_hits', 0)} unshifted)"


def _sizes(sizes: dict | None) -> str:
    """The input shift per column, against how far the column's window mean moves by itself."""
    if not sizes:
        return ""
    return "; input shift: " + ", ".join(
        f"{c} +{v['shift']:.3g} ({v['sd']:g} reference sd; {v['shift'] / v['natural_move']:.2f}x the sd of "
        f"its window-to-window mean change)" for c, v in sizes.items() if v.get("natural_move"))


def _met(value) -> str:
    return {True: "met", False: "**not met**", None: "n/a"}[value]


def dataset_table(name: str, result: dict) -> str:
    """The markdown table of one data set."""
    n, k = len(result["windows"]), result["shift_index"]
    head = (f"**{name}** ({result['task']}; {result['model']}); {n} windows per scenario, shift from "
            f"window {k + 1} ({result['shift_at']}); false alarms over the unshifted windows, "
            f"delay in windows after the shift to the first alarm the unshifted run did not also "
            f"raise in that window (0 = the first shifted window; in brackets the shifted windows "
            f"that alarmed, and the same windows of the unshifted run that alarmed)"
            + (f"; our monitor runs with {', '.join(result['monitor_overrides'])}"
               if result.get("monitor_overrides") else "")
            + (f"; our reference: `monitoring.reference: {result['reference']}`" if result.get("reference") else "")
            + _sizes(result.get("input_shift_sizes")) + "\n\n")
    cols = ["judgment"] + [f"{NAMES[s]} {x}" for s in SIDES for x in ("false alarms", "delay")] + \
        [f"false alarms <= {MAX_FALSE_ALARM_RATE:.0%}", f"delay <= {MAX_DELAY}", "beats both peers"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for judgment, label in JUDGMENTS.items():
        cells = [label]
        for side in SIDES:
            cells += list(_cell(result["scores"][judgment][side]))
        goal = result["targets"][judgment] or {}
        cells += [_met(goal.get("false_alarms_at_most_5pct")), _met(goal.get("detected_within_2_windows")),
                  _met(goal.get("beats_both_peers"))]
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines)
