"""The features report's display values (shared by ``features`` and ``features_merge``)."""
from __future__ import annotations


def features_display(result: dict) -> dict:
    """Table rows with inline sparklines for the HTML report."""
    from markupsafe import Markup, escape

    from mlops.reports.svg import sparkline_hist
    rows = []
    for f in result["features"]:
        row = dict(f)
        if f.get("hist"):
            row["dist"] = sparkline_hist(f["hist"]["counts"])
        elif f.get("top"):
            row["dist"] = Markup(", ").join(
                escape(f"{t['value']} {t['share']:.0%}") for t in f["top"][:4])
        else:
            row["dist"] = "—"
        rows.append(row)
    derived = [{"name": k, "expr": v} for k, v in result["plan"]["derived"].items()]
    return {"feature_rows": rows, "derived_rows": derived,
            "cards": [{"label": "rows", "value": result["rows"]},
                      {"label": "features", "value": len(result["features"])},
                      {"label": "label positive rate", "value": result["label"]["positive_rate"],
                       "format": "pct"},
                      {"label": "build time", "value": result["duration_s"], "unit": "s"}]}
