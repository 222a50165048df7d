"""Display-only values for monitor.html: tables and inline SVG charts."""
from __future__ import annotations

from mlops.reports import svg

STAT_KEYS = ("psi", "js", "ks_stat", "ks_pvalue", "wasserstein", "chi2_stat", "chi2_pvalue",
             "unseen_share")


def display(result: dict, max_charts: int) -> dict:
    feats = result["features"]
    order = sorted(feats, key=lambda n: (not feats[n]["drift"], n))
    rows = []
    for n in order:
        f = feats[n]
        rows.append({"feature": n, "type": f["type"], "test": f["test"], "threshold": f["threshold"],
                     "score": f.get("score"), "drift": "drift" if f["drift"] else "ok",
                     **{k: f.get(k) for k in STAT_KEYS},
                     "ref_rows": f.get("ref_rows"), "cur_rows": f.get("cur_rows"),
                     "cur_null_share": f.get("cur_null_share")})
    hists = []
    for n in order[:max_charts]:
        h = feats[n].get("hist") or {}
        bins = h.get("edges") if "edges" in h else h.get("categories")
        if bins is None or not h.get("ref"):
            continue
        hists.append({"feature": n, "drift": feats[n]["drift"],
                      "svg": svg.histogram_overlay(bins, h["ref"], h["cur"], xlabel=n,
                                                   width=520, height=220)})
    perf = result["performance"]
    charts = {}
    if perf["chunks"]:
        pts = [(c["start"], c["value"]) for c in perf["chunks"]]
        thresholds = []
        if perf["baseline"] is not None:
            hib = perf["metric"] not in ("log_loss", "brier", "mae", "rmse")
            limit = perf["baseline"] - perf["max_drop"] if hib else perf["baseline"] + perf["max_drop"]
            thresholds = [(perf["baseline"], "training-time value"), (limit, "concept drift threshold")]
        markers = [(d["time"], f"{name} detection") for name, d in result["detectors"].items()
                   if d.get("time")]
        charts["performance"] = svg.line_chart({perf["metric"]: pts}, xlabel="time (chunk start)",
                                               ylabel=perf["metric"], thresholds=thresholds,
                                               markers=markers, x_is_time=True)
    charts["scores"] = svg.bar_chart([(r["feature"], r["score"]) for r in rows
                                      if r["test"] in ("wasserstein", "js", "psi")][:max_charts],
                                     xlabel="drift distance (deciding test)", ylabel="feature",
                                     threshold=_common_threshold(result))
    cards = [{"label": "features drifted", "value": f"{result['n_drifted']} / {result['n_features']}",
              "status": "fail" if result["dataset_drift"] else "ok"},
             {"label": "drift share", "value": result["drift_share"], "format": "pct",
              "hint": f"dataset drift at >= {result['policy']['drift_share']:.0%}"},
             {"label": "current rows", "value": result["current"]["rows"]}]
    if result.get("prediction_drift"):
        pd_ = result["prediction_drift"]
        cards.append({"label": "prediction drift", "value": "yes" if pd_["drift"] else "no",
                      "status": "warn" if pd_["drift"] else "ok",
                      "hint": f"{pd_['test']} = {pd_['score']:.3g}" if pd_.get("score") is not None else None})
    if perf["chunks"]:
        cards.append({"label": "concept drift", "value": "yes" if perf["concept_drift"] else "no",
                      "status": "fail" if perf["concept_drift"] else "ok",
                      "hint": f"{perf['metric']} vs {perf['baseline']:.3f} at training"})
    detector_rows = [{"detector": n, **d} for n, d in result["detectors"].items()]
    return {"detector_rows": detector_rows, "feature_rows": rows, "hists": hists, "charts": charts, "cards": cards}


def _common_threshold(result: dict):
    """One threshold line when every distance-decided feature shares it."""
    ths = {f["threshold"] for f in result["features"].values()
           if f["test"] in ("wasserstein", "js", "psi")}
    return (ths.pop(), "drift threshold") if len(ths) == 1 else None
