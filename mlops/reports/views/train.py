"""The model card's display values (charts, cards, metric rows) for ``train.html``."""
from __future__ import annotations

import numpy as np

from mlops.reports import svg
from mlops.training.pipeline import TrainOutcome
from mlops.training.result import TrainResult

SPLITS = ("train", "valid", "test")
CLASSIFIER_COLUMNS = ("rows", "positives", "roc_auc", "pr_auc", "log_loss", "brier", "precision",
                      "recall")


def model_card(result: TrainResult, outcome: TrainOutcome, class_names: list[str] | None) -> dict:
    """train.html (the model card): per-split metric rows, charts and headline cards."""
    y_test = outcome.parts["test"][outcome.label].to_numpy()
    s_test = outcome.scores["test"]
    if result.task == "regression":
        rows, charts, cards = _regression(result.evaluation, y_test, s_test)
    else:
        rows, charts, cards = _classification(result.evaluation, class_names)
    fair = result.fairness
    if fair:
        charts["fairness"] = svg.bar_chart(
            [(g["group"], g["selection_rate"]) for g in fair["groups"]],
            xlabel="share flagged (selection rate)", ylabel=fair["attribute"])
    cards.append({"label": "registry version", "value": (result.registry or {}).get("version", "—")})
    return {"metric_rows": rows, "charts": charts, "cards": cards,
            "positive_name": (class_names or ["", "positive"])[-1],
            "decision_rule": decision_rule_text(result.decision),
            "decision_rows": [{"window": k, **v}
                              for k, v in (result.decision.get("achieved") or {}).items()],
            "left_out_rows": left_out_rows(result.split)}


def decision_rule_text(decision: dict) -> str:
    """The decision rule in words, e.g. ``positive_rate 0.02 on validation -> 0.8312``."""
    if decision.get("threshold") is None:
        return "none (a regressor has no decision threshold)"
    if decision.get("rule") == "fixed":
        return f"fixed: threshold {decision['threshold']:.4g}"
    met = "" if decision.get("met", True) else " (target not reached)"
    return (f"{decision['rule']} {decision['target']:g} on the validation window: threshold "
            f"{decision['threshold']:.4g}{met}")


LEFT_OUT_MEANING = {
    "unlabelled": "the label is null (whatever available_at holds)",
    "label_known_too_late": "available_at is after the cut-off",
    "label_time_missing": "a label whose available_at is null: its time is unknown, so it is not used",
    "outside_windows": "before the train window (warm-up: windows not full yet) or after the test window",
    "deduplicated": "exact duplicate events dropped (data.dedupe: true), before the table was built",
}


def left_out_rows(split: dict) -> list[dict]:
    """One row per reason a row was not used for training, with its count (None: not known)."""
    counts = split.get("left_out") or {}
    return [{"reason": reason.replace("_", " "), "rows": counts[reason] if counts[reason] is not None
             else "not known (table built by action=features)", "meaning": meaning}
            for reason, meaning in LEFT_OUT_MEANING.items() if reason in counts]


def _regression(ev: dict, y_test: np.ndarray, s_test: np.ndarray) -> tuple[list, dict, list]:
    t = ev["test"]
    rows = [{"split": k, **{m: ev[k].get(m) for m in ("rows", "rmse", "mae", "r2")}} for k in SPLITS]
    y = np.asarray(y_test, dtype=float)
    pts = _sample(np.column_stack([s_test, y, y - s_test]), 2000)
    charts = {
        "pred_vs_actual": svg.scatter([(float(a), float(b)) for a, b, _ in pts],
                                      xlabel="predicted", ylabel="actual", diagonal=True),
        "residuals": svg.scatter([(float(a), float(r)) for a, _, r in pts],
                                 xlabel="predicted", ylabel="residual (actual - predicted)",
                                 hline=0.0),
    }
    cards = [{"label": "test RMSE", "value": t["rmse"]}, {"label": "test MAE", "value": t["mae"]},
             {"label": "test R²", "value": t["r2"]}]
    return rows, charts, cards


def _classification(ev: dict, class_names: list[str] | None) -> tuple[list, dict, list]:
    t = ev["test"]
    rows = [{"split": k, **{m: ev[k].get(m) for m in CLASSIFIER_COLUMNS}} for k in SPLITS]
    charts = {
        "calibration": svg.calibration_curve([tuple(p) for p in t["calibration"]]),
        "confusion": svg.confusion_matrix(t["confusion"], list(class_names or ["negative", "positive"])),
    }
    cards = [{"label": "test ROC-AUC", "value": t["roc_auc"]},
             {"label": "test PR-AUC", "value": t["pr_auc"]},
             {"label": f"precision @ {t['threshold']}", "value": t["precision"], "format": "pct"},
             {"label": f"recall @ {t['threshold']}", "value": t["recall"], "format": "pct"}]
    return rows, charts, cards


def _sample(rows: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows, evenly spaced (deterministic): a readable scatter plot."""
    if len(rows) <= n:
        return rows
    return rows[np.linspace(0, len(rows) - 1, n).astype(int)]
