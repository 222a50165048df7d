"""``action=monitor``: data drift, prediction drift, performance with delayed labels, detectors.

Exit code 3 when drift is found and ``alert`` is among ``monitoring.on_drift``,
so cron/CI notice. ``retrain`` registers a candidate trained on the recent window
as ``staging`` (continuous training); ``trip_breaker`` opens the serving circuit
breaker (state file under ``paths.home``).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from mlops.actions.context import RunContext
from mlops.actions.drift_checks import multivariate_check, record_run
from mlops.actions.monitor_sources import current_frame
from mlops.actions.outputs import ActionResult, write_report
from mlops.actions.performance_estimate import estimated_performance, estimation_display
from mlops.actions.registry_access import model_name, open_registry, trusted_types
from mlops.config.validate import plain
from mlops.errors import ConfigError
from mlops.home import open_private
from mlops.monitoring import detectors as det
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.performance import performance_by_chunk
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import Reference

PREDICTION = "prediction"
ON_DRIFT = ("alert", "retrain", "trip_breaker")
DETECTORS = {"page_hinkley": det.PageHinkley, "ddm": det.DDM, "adwin": det.ADWIN}


def policy_from(mc) -> DriftPolicy:
    try:
        return DriftPolicy(n_bins=int(mc.n_bins), thresholds=plain(mc.thresholds),
                           small_sample_rows=int(mc.small_sample_rows),
                           overrides=plain(mc.features), drift_share=float(mc.drift_share),
                           min_rows=plain(mc.min_rows),
                           min_reference_rows=int(mc.min_reference_rows),
                           min_rows_dataset=int(mc.min_rows_dataset))
    except ConfigError as exc:  # the policy names its own keys; prefix the config group
        raise exc.under("monitoring") from None


def _split_reference(ref: Reference) -> tuple[Reference, Reference | None]:
    """Inputs only (data drift) and the model score alone (prediction drift)."""
    numeric = {k: v for k, v in ref.numeric.items() if k != PREDICTION}
    sample = {k: v for k, v in ref.sample.items() if k.split("\0")[0] != PREDICTION}
    inputs = Reference(numeric=numeric, categorical=dict(ref.categorical), n_bins=ref.n_bins,
                       max_rows=ref.max_rows, sample=sample)
    pred = (Reference(numeric={PREDICTION: ref.numeric[PREDICTION]}, categorical={},
                      n_bins=ref.n_bins, max_rows=ref.max_rows) if PREDICTION in ref.numeric else None)
    return inputs, pred


def error_stream(y: np.ndarray, p: np.ndarray, threshold: float, kind: str,
                 task: str = "classification") -> np.ndarray:
    """0/1 errors in time order: on every labelled row, or only on labelled positives.
    For a regressor: the absolute error of every labelled row.

    With rare positives a concept change that makes new positives look
    ordinary barely moves the overall error rate but jumps the miss rate, so
    ``missed_positives`` sees it within a few dozen labels.
    """
    if task == "regression":
        return np.abs(y - p)
    wrong = ((p >= threshold).astype(float) != y).astype(float)
    if kind == "errors":
        return wrong
    if kind == "missed_positives":
        return wrong[y == 1]
    raise ConfigError(f"must be 'errors' or 'missed_positives'; got {kind!r}",
                      key="monitoring.detector_stream")


def run_detectors(stream: np.ndarray, times: list, params: dict, kind: str) -> dict:
    """First detection per configured detector over the time-ordered error stream.
    DDM models a 0/1 error rate: on a real-valued stream (absolute errors) it is skipped."""
    out = {}
    binary = bool(np.isin(stream, (0.0, 1.0)).all())
    for name, kwargs in params.items():
        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}; valid: {sorted(DETECTORS)}",
                              key=f"monitoring.detectors.{name}", fix="remove or rename it")
        if name == "ddm" and kind == "absolute_errors" and not binary:
            out[name] = {"first_detection": None, "time": None, "stream": kind,
                         "n": int(len(stream)), "note": "DDM needs 0/1 errors; skipped"}
            continue
        try:
            d = DETECTORS[name](**(kwargs or {}))
        except (TypeError, ConfigError) as exc:
            raise ConfigError(str(exc), key=f"monitoring.detectors.{name}") from None
        idx = det.first_detection(d, stream.tolist())
        out[name] = {"first_detection": idx, "time": str(times[idx]) if idx is not None else None,
                     "stream": kind, "n": int(len(stream))}
    return out


def run(ctx: RunContext) -> ActionResult:
    t0 = time.perf_counter()
    mc = ctx.cfg.monitoring
    bad = [a for a in plain(mc.on_drift) if a not in ON_DRIFT]
    if bad:
        raise ConfigError(f"unknown action(s) {bad}; valid: {list(ON_DRIFT)}",
                          key="monitoring.on_drift", fix="use alert, retrain and/or trip_breaker")
    policy = policy_from(mc)
    reg, name = open_registry(ctx), model_name(ctx)
    model, mv = reg.load_model(name, str(mc.alias), trusted_types(ctx))
    plan = ctx.model_plan(mv)  # the model carries its plan (features= is for training)
    ref_path = mc.reference or reg.reference_path(name, mv.version)
    inputs_ref, pred_ref = _split_reference(Reference.load(ref_path))
    stream, info = current_frame(ctx, plan, model, version=mv.version)
    cur = stream.filter(pl.col("__in_window"))
    big = cur.height * len(inputs_ref.features) > 5_000_000  # show progress on long runs
    drift = detect_drift(inputs_ref, cur, policy, progress=_progress if big else None)
    pred_drift = (detect_drift(pred_ref, cur, policy)["features"][PREDICTION]
                  if pred_ref is not None and PREDICTION in cur.columns else None)
    drift["multivariate"] = multivariate_check(mc, inputs_ref.sample_frame(), cur,
                                               list(inputs_ref.numeric), list(inputs_ref.categorical))

    label, pc = plan.label["column"], mc.performance
    task = (mv.tags or {}).get("task") or "classification"
    metric = str(pc.metric or ("rmse" if task == "regression" else "roc_auc"))
    performance, detections = [], {}
    labelled = cur.filter(pl.col("__labelled"))
    baseline = mv.metrics.get(metric)
    if labelled.height and baseline is not None:
        chunk = int(pc.chunk) if str(pc.chunk).isdigit() else str(pc.chunk)
        performance = performance_by_chunk(
            labelled, time_col=plan.timestamp, label_col=label, score_col=PREDICTION,
            chunk=chunk, metric=metric, baseline=float(baseline),
            max_drop=_max_drop(pc.max_drop, metric, float(baseline)))
        ordered = stream.filter(pl.col("__labelled")).sort(plan.timestamp)
        info["detector_burn_in_rows"] = int((~ordered["__in_window"]).sum())
        y = ordered[label].to_numpy().astype(float)
        kind = "absolute_errors" if task == "regression" else str(mc.detector_stream)
        stream = error_stream(y, ordered[PREDICTION].to_numpy(), float(pc.threshold), kind, task)
        times = ordered[plan.timestamp].to_list()
        times = times if kind in ("errors", "absolute_errors") else [t for t, v in zip(times, y) if v == 1]
        detections = run_detectors(stream, times, plain(mc.detectors), kind)
    concept = any(c.get("flag") for c in performance)
    data_drift = bool(drift_reasons(drift, bool(mc.multivariate.act)))
    found = data_drift or concept
    actions = _act(ctx, data_drift, concept, drift, name, mv, info) if found else []
    status = "fail" if found else ("warn" if drift["dataset_status"] == "insufficient_data"
                                   else "ok")
    headline = (drift_headline(drift)
                + ("; performance dropped (concept drift)" if concept else "")
                + (f"; actions: {', '.join(a['action'] for a in actions)}" if actions else ""))
    result = {
        "status": status, "headline": headline,
        "model": {"name": name, "version": mv.version, "alias": str(mc.alias)},
        "current": info, "reference": {"path": str(ref_path)},
        **drift, "prediction_drift": pred_drift,
        "task": task,
        "performance": {"metric": metric, "baseline": baseline,
                        "max_drop": _max_drop(pc.max_drop, metric, float(baseline or 0.0)), "chunks": performance,
                        "concept_drift": concept, "labelled_rows": labelled.height,
                        "estimated": estimated_performance(ctx, plan, model, mv, cur)},
        "detectors": detections, "data_drift": data_drift, "actions": actions,
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    from mlops.actions.monitor_view import display
    over_time = record_run(ctx, result, series=f"monitor:{name}", kind="monitor", window=info,
                           alerted=any(a["action"] == "alert" for a in actions))
    write_report(ctx, "monitor", result, title=f"Monitoring: {name} v{mv.version}",
                 context={**display(result, int(ctx.cfg.report.max_chart_features), over_time),
                          "history_runs": int(mc.history_runs),
                          **estimation_display(result["performance"]["estimated"])})
    code = 3 if found and "alert" in plain(mc.on_drift) else 0
    return ActionResult(result=result, exit_code=code,
                        metrics={"drift_share": drift["drift_share"],
                                 "n_drifted": drift["n_drifted"]})


def _act(ctx, data_drift, concept, drift, name, mv, info) -> list[dict]:
    actions = []
    reasons = drift_reasons(drift, bool(ctx.cfg.monitoring.multivariate.act)) + \
        (["performance drop"] if concept else [])
    now = datetime.now(timezone.utc).isoformat()
    for action in plain(ctx.cfg.monitoring.on_drift):
        if action == "alert":
            record = {"time": now, "model": name, "version": mv.version, "reasons": reasons,
                      "run": str(ctx.output_dir), "series": f"monitor:{name}"}
            with open_private(ctx.home / "alerts.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            actions.append({"action": "alert", "detail": "; ".join(reasons),
                            "record": str(ctx.home / "alerts.jsonl")})
        elif action == "trip_breaker":  # shared state in the online store: servers poll it
            from mlops.actions.serving_ops import trip_serving_breaker
            actions.append(trip_serving_breaker(ctx, name, mv.version, "; ".join(reasons)))
        elif action == "retrain":
            from mlops.actions.retrain import retrain_candidate
            actions.append(retrain_candidate(ctx, info))
    return actions


def _max_drop(configured, metric: str, baseline: float) -> float:
    """The configured tolerance, or a default in the metric's own scale."""
    if configured is not None:
        return float(configured)
    return 0.1 * abs(baseline) if metric in ("rmse", "mae") else 0.05


def drift_reasons(drift: dict, multivariate_acts: bool) -> list[str]:
    """Why the data drifted: per-feature verdicts, and the multivariate test when it may act."""
    mv = drift.get("multivariate") or {}
    return ([f"data drift in {drift['n_drifted']} features"] if drift["dataset_drift"] else []) + \
        ([f"multivariate drift (classifier AUC {mv['auc']:.3f} > {mv['threshold']:.3f})"]
         if mv.get("drift") and multivariate_acts else [])


def drift_headline(drift: dict) -> str:
    """One line on the data drift verdict, saying why when the data were too few."""
    text = (f"{drift['n_drifted']} of {drift['n_features']} features drifted "
            f"({drift['drift_share']:.0%})")
    if drift["n_insufficient"]:
        text += f", {drift['n_insufficient']} with too little data"
    mv = drift.get("multivariate") or {}
    if mv.get("drift"):
        text += (f"; multivariate drift (classifier AUC {mv['auc']:.3f}"
                 + (")" if mv.get("acts") else ", reported only)"))
    if drift["dataset_status"] == "insufficient_data":
        return f"{text}; insufficient data for a dataset verdict ({drift['dataset_reason']})"
    return f"{text}; " + ("dataset drift" if drift["dataset_drift"] else "no dataset drift")


def _progress(done: int, total: int, feature: str) -> None:
    if done == total or done % 5 == 0:
        print(f"  drift: {done}/{total} features ({feature})", flush=True)


def window_bounds(first: datetime, last: datetime, start_day, days: float) -> tuple[datetime, datetime]:
    if days <= 0:
        raise ConfigError(f"must be > 0; got {days}", key="monitoring.window.days")
    if start_day is None:
        return last - timedelta(days=days), last + timedelta(microseconds=1)
    lo = first + timedelta(days=float(start_day))
    return lo, lo + timedelta(days=days)
