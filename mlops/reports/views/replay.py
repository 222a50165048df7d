"""Display-only values for replay.html (``action=replay``)."""
from __future__ import annotations

from mlops.reports import svg


def replay_display(result: dict, label: str) -> dict:
    """replay.html: each feature's PSI against its limit, and the cards."""
    trips, breaker = result["trips"], result["breaker"]
    seen = trips[0] if trips else breaker
    psi, limits = seen.get("feature_psi") or {}, seen.get("feature_limits") or {}
    # each feature against its own (calibrated) limit: 1.0 is the limit for every bar
    ratios = [(k, v / limits[k]) for k, v in psi.items() if v is not None and limits.get(k)]
    chart = svg.bar_chart(sorted(ratios, key=lambda kv: -kv[1])[:25],
                          xlabel="PSI over the breaker window / the feature's limit",
                          ylabel="feature", threshold=(1.0, "limit"))
    latency = result["latency_ms"]
    return {"psi_chart": chart, "cards": [
        {"label": "live events", "value": result["window"]["events"]},
        {"label": "breaker", "value": breaker.get("state"),
         "status": "warn" if result["breaker_tripped"] else "ok"},
        {"label": "p99 latency per request", "value": latency["p99"], "unit": "ms",
         "hint": f"{latency['records_per_request']} records per request"},
        *_answer_cards(result, label)]}


def _answer_cards(result: dict, label: str) -> list[dict]:
    """Predicted positives (a classifier) and abstentions of the tripped breaker."""
    cards = [{"label": "abstained (no value)", "value": result["decisions"].get("abstain", 0)}]
    if (result.get("decision") or {}).get("task") != "regression":
        cards.insert(0, {"label": f"predicted positive ({label})", "value": int(result["flagged"])})
    return cards
