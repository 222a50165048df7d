"""Display-only values for consistency.html (``action=consistency``)."""
from __future__ import annotations

from mlops.reports import svg


def consistency_display(result: dict) -> dict:
    """consistency.html: per-feature mismatch table and chart, mismatching examples, cards."""
    rows = [{"feature": f, **{k: r[k] for k in ("type", "compared", "mismatch", "online_null",
                                               "offline_null", "both_null", "mismatch_rate",
                                               "max_abs_diff", "smape")}}
            for f, r in sorted(result["features"].items(), key=lambda kv: -kv[1]["mismatch_rate"])]
    chart = svg.bar_chart([(r["feature"], r["mismatch_rate"]) for r in rows],
                          xlabel="share of logged events whose value differs offline",
                          ylabel="feature",
                          threshold=(result["max_mismatch_rate"], "alert threshold"))
    examples = [{"feature": f, **e} for f, r in result["features"].items() for e in r["examples"]]
    cards = [{"label": "events compared", "value": result["join"]["matched"]},
             {"label": "features failing", "value": f"{len(result['failing'])} / {len(rows)}",
              "status": "fail" if result["failing"] else "ok"},
             {"label": "not found offline", "value": result["join"]["unmatched"],
              "status": "warn" if result["join"]["unmatched"] else "ok"}]
    return {"feature_rows": rows, "chart": chart, "examples": examples[:100], "cards": cards}
