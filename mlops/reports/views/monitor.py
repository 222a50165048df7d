"""Display-only values for monitor.html and drift.html: tables and inline SVG charts.

Both reports share the per-feature table, the distributions, the multivariate verdict and
the drift-over-time charts (``templates/_drift.html`` draws them); monitor.html adds
performance, the detectors and the estimated performance (CBPE) against the realized.
"""
from __future__ import annotations

from mlops.monitoring import history as hist
from mlops.reports import svg
from mlops.reports.small_multiples import small_multiples

STAT_KEYS = ("psi", "js", "ks_stat", "ks_pvalue", "wasserstein", "chi2_stat", "chi2_pvalue",
             "unseen_share")
_STATUS_ORDER = {"drift": 0, "insufficient_data": 1, "reference_too_variable": 1, "no_drift": 2}
_BADGE = {"drift": "drift", "no_drift": "ok", "insufficient_data": "insufficient data",
          "reference_too_variable": "not judged"}


def feature_order(feats: dict) -> list[str]:
    """Drifted features first, then those without enough data, then the rest (by name)."""
    return sorted(feats, key=lambda n: (_STATUS_ORDER.get(feats[n].get("status"), 2), n))


def feature_rows(feats: dict) -> list[dict]:
    rows = []
    for n in feature_order(feats):
        f = feats[n]
        rows.append({"feature": n, "type": f["type"], "test": f["test"], "threshold": f["threshold"],
                     "score": f.get("score"), "drift": _BADGE.get(f.get("status"), "ok"),
                     **{k: f.get(k) for k in STAT_KEYS},
                     "ref_rows": f.get("ref_rows"), "cur_rows": f.get("cur_rows"),
                     "cur_null_share": f.get("cur_null_share"), "limit_text": f.get("limit_text"),
                     "note": "; ".join(x for x in (f.get("quality"), f.get("note")) if x) or None})
    return rows


def hist_charts(feats: dict, max_charts: int) -> list[dict]:
    out = []
    for n in feature_order(feats)[:max_charts]:
        h = feats[n].get("hist") or {}
        bins = h.get("edges") if "edges" in h else h.get("categories")
        if bins is None or not h.get("ref"):
            continue
        out.append({"feature": n, "drift": feats[n]["drift"],
                    "svg": svg.histogram_overlay(bins, h["ref"], h["cur"], xlabel=n,
                                                 width=520, height=220)})
    return out


def _rule_hint(policy: dict) -> str:
    if policy.get("dataset_rule") == "any feature":
        return f"dataset drift when any feature is past its limit ({policy['family_rule']})"
    share = policy.get("drift_share")
    return f"dataset drift at >= {0.5 if share is None else share:.0%}"


def drift_cards(result: dict) -> list[dict]:
    status = result.get("dataset_status")
    cards = [{"label": "features drifted", "value": f"{result['n_drifted']} / {result['n_features']}",
              "status": "fail" if result["dataset_drift"] else
              ("warn" if status == "insufficient_data" else "ok")},
             {"label": "drift share", "value": result["drift_share"], "format": "pct",
              "hint": _rule_hint(result["policy"])},
             {"label": "current rows", "value": result.get("cur_rows"),
              "hint": f"dataset verdict needs >= {result['policy']['min_rows_dataset']}"}]
    if result.get("n_insufficient"):
        cards.append({"label": "too little data", "value": result["n_insufficient"],
                      "status": "warn", "hint": "features without a verdict (min_rows)"})
    if result.get("n_unjudgeable"):
        cards.append({"label": "not judged", "value": result["n_unjudgeable"], "status": "warn",
                      "hint": "the reference varies more than the statistic can reach"})
    mv = result.get("multivariate")
    if mv and mv.get("auc") is not None:
        cards.append({"label": "multivariate drift", "value": "yes" if mv["drift"] else "no",
                      "status": "fail" if mv["drift"] else "ok",
                      "hint": f"domain classifier AUC {mv['auc']:.3f} vs {mv['threshold']:.3f}"})
    return cards


def multivariate_view(mv: dict | None) -> dict | None:
    if not mv:
        return None
    chart = None
    if mv.get("top_features"):
        chart = svg.bar_chart([(t["feature"], t["importance"]) for t in mv["top_features"]],
                              xlabel="drop in the classifier's AUC when the feature is shuffled",
                              ylabel="feature")
    return {**mv, "chart": chart}


def history_view(records: list[dict], *, max_panels: int, drift_share: float | None = None,
                 performance_label: str = "performance") -> dict:
    """Small multiples of the deciding score per feature over the runs, alerts as events,
    and the performance chunks of every run (realized and estimated) on one time axis."""
    if not records:
        return {"runs": 0, "trends": None, "performance": None}
    alerts = [(r["at"], "alert") for r in records if r.get("alerted")]
    panels = [{"title": "dataset: drift share", "threshold": drift_share,
               "points": [(r["at"], r.get("drift_share"), r.get("dataset_status")) for r in records]}]
    mv = [(r["at"], r["multivariate"].get("auc"), r["multivariate"].get("status"))
          for r in records if r.get("multivariate")]
    if mv:
        last = [r["multivariate"] for r in records if r.get("multivariate")][-1]
        panels.append({"title": "multivariate: classifier AUC", "threshold": last.get("threshold"),
                       "points": mv})
    trends = hist.feature_trends(records)
    latest = records[-1].get("features") or {}
    order = feature_order({n: latest.get(n, {"status": "no_drift"}) for n in trends})
    for name in order[:max_panels]:
        t = trends[name]
        panels.append({"title": f"{name} ({t['test']})", "threshold": t["threshold"],
                       "points": t["points"]})
    perf = hist.performance_points(records)
    perf_chart = (svg.line_chart(perf, xlabel="time (chunk start)", ylabel=performance_label,
                                 markers=alerts, x_is_time=True) if perf else None)
    return {"runs": len(records), "first": records[0]["at"], "last": records[-1]["at"],
            "trends": small_multiples(panels, markers=alerts),
            "performance": perf_chart, "alerts": len(alerts)}


def over_time(records: list[dict], skipped: int, result: dict, *, max_panels: int) -> dict:
    """The drift-over-time view of a run's series (:func:`history_view`), with the count of
    unreadable history lines skipped."""
    perf = result.get("performance") or {}
    view = history_view(records, max_panels=max_panels, drift_share=result["policy"]["drift_share"],
                        performance_label=str(perf.get("metric", "performance")))
    view["skipped_lines"] = skipped
    return view


def monitor_display(result: dict, max_charts: int, history: dict | None = None) -> dict:
    """monitor.html: the shared drift views plus performance and detectors."""
    feats = result["features"]
    rows = feature_rows(feats)
    perf = result["performance"]
    charts = {}
    if perf["chunks"]:
        pts = [(c["start"], c["value"]) for c in perf["chunks"]]
        thresholds = []
        if perf["baseline"] is not None:
            hib = perf["metric"] not in ("log_loss", "brier", "mae", "rmse")
            limit = perf["baseline"] - perf["max_drop"] if hib else perf["baseline"] + perf["max_drop"]
            thresholds = [(perf["baseline"], "baseline"), (limit, "limit")]
        markers = [(d["time"], f"{name} detection") for name, d in result["detectors"].items()
                   if d.get("time")]
        charts["performance"] = svg.line_chart({perf["metric"]: pts}, xlabel="time (chunk start)",
                                               ylabel=perf["metric"], thresholds=thresholds,
                                               markers=markers, x_is_time=True)
    charts["scores"] = scores_chart(rows, result, max_charts)
    cards = drift_cards(result)
    if result.get("prediction_drift"):
        pd_ = result["prediction_drift"]
        cards.append({"label": "prediction drift", "value": "yes" if pd_["drift"] else "no",
                      "status": "warn" if pd_["drift"] else "ok",
                      "hint": f"{pd_['test']} = {pd_['score']:.3g}" if pd_.get("score") is not None else None})
    if perf["chunks"]:
        cards.append({"label": "concept drift", "value": "yes" if perf["concept_drift"] else "no",
                      "status": "fail" if perf["concept_drift"] else "ok",
                      "hint": f"{perf['metric']} vs baseline {perf['baseline']:.3f}"})
    detector_rows = [{"detector": n, **d} for n, d in result["detectors"].items()]
    return {"detector_rows": detector_rows, "feature_rows": rows,
            "hists": hist_charts(feats, max_charts), "charts": charts, "cards": cards,
            "mv": multivariate_view(result.get("multivariate")),
            "over_time": history or {"runs": 0, "trends": None, "performance": None}}


def drift_display(result: dict, max_charts: int, history: dict | None = None) -> dict:
    """drift.html: the same drift views, without a model."""
    rows = feature_rows(result["features"])
    return {"feature_rows": rows, "hists": hist_charts(result["features"], max_charts),
            "charts": {"scores": scores_chart(rows, result, max_charts)},
            "cards": drift_cards(result), "mv": multivariate_view(result.get("multivariate")),
            "over_time": history or {"runs": 0, "trends": None, "performance": None}}


def scores_chart(rows: list[dict], result: dict, max_charts: int):
    return svg.bar_chart([(r["feature"], r["score"]) for r in rows
                          if r["test"] in ("wasserstein", "js", "psi")][:max_charts],
                         xlabel="drift distance (deciding test)", ylabel="feature",
                         threshold=_common_threshold(result))


def _common_threshold(result: dict):
    """One threshold line when every distance-decided feature shares it."""
    ths = {f["threshold"] for f in result["features"].values()
           if f["test"] in ("wasserstein", "js", "psi")}
    return (ths.pop(), "drift threshold") if len(ths) == 1 else None


def estimation_display(block: dict) -> dict:
    """Display-only values for monitor.html: estimated vs realized per chunk, with the band."""
    if not block.get("supported") or not block.get("chunks"):
        return {"estimation_charts": {}, "estimation_rows": []}
    charts, rows = {}, []
    for metric in block["metrics"]:
        series = {
            "estimated": [(c["start"], c["estimated"][metric]) for c in block["chunks"]],
            "realized": [(c["start"], (c["realized"] or {}).get(metric)) for c in block["chunks"]],
            "band low": [(c["start"], (c["band"][metric] or [None])[0]) for c in block["chunks"]],
            "band high": [(c["start"], (c["band"][metric] or [None, None])[1])
                          for c in block["chunks"]]}
        charts[metric] = svg.line_chart(series, xlabel="time (chunk start)", ylabel=metric,
                                        x_is_time=True, title=f"{metric}: estimated vs realized",
                                        width=520, height=240)
    for c in block["chunks"]:
        row = {"start": c["start"], "rows": c["rows"], "labelled": c["labelled_share"],
               "shown": c["shown"], "outside band": ", ".join(c["outside_band"]) or None}
        for metric in block["metrics"]:
            row[f"{metric} est."] = c["estimated"][metric]
            row[f"{metric} real."] = (c["realized"] or {}).get(metric)
        rows.append(row)
    return {"estimation_charts": charts, "estimation_rows": rows}


def monitor_page(result: dict, records: list[dict], skipped: int, *, max_charts: int,
                 history_runs: int) -> dict:
    """monitor.html's context: the drift views, the series' drift over time (its last
    ``history_runs`` runs, from :func:`mlops.monitoring.history.record_run`) and the
    estimated performance."""
    history = over_time(records, skipped, result, max_panels=max_charts)
    return {**monitor_display(result, max_charts, history), "history_runs": history_runs,
            **estimation_display(result["performance"]["estimated"])}
