"""Evaluation metrics and the fairness audit (plain numpy in, JSON-safe dicts out).

Fairness follows fairlearn's definitions: demographic parity difference = max -
min selection rate over groups; equalized odds difference = the larger of the
TPR gap and the FPR gap.

Example:
    >>> m = classification_metrics(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.6, 0.3]), 0.5)
    >>> m["roc_auc"], m["precision"], m["recall"]
    (1.0, 1.0, 1.0)
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False,
                    "precision": True, "recall": True, "f1": True, "accuracy": True,
                    "mae": False, "rmse": False, "r2": True}


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """ROC-AUC, PR-AUC, log loss, Brier, precision/recall/F1 at ``threshold``."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    pred = (p >= threshold).astype(int)
    two = len(np.unique(y)) == 2
    out = {
        "rows": int(y.size), "positives": int(y.sum()), "positive_rate": float(y.mean()) if y.size else None,
        "roc_auc": float(skm.roc_auc_score(y, p)) if two else None,
        "pr_auc": float(skm.average_precision_score(y, p)) if two else None,
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "threshold": float(threshold),
    }
    out["confusion"] = skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    out["calibration"] = calibration(y, p)
    return out


def evaluate(task: str, y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """The task's metrics on one split (``threshold`` only matters for classification)."""
    if task == "regression":
        return regression_metrics(y, scores)
    return classification_metrics(y, scores, threshold)


def calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[list[float]]:
    """[(mean predicted, observed frequency, count)] over quantile bins of ``p``."""
    if y.size == 0:
        return []
    edges = np.unique(np.quantile(p, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    out = []
    for b in np.unique(idx):
        m = idx == b
        out.append([float(p[m].mean()), float(y[m].mean()), int(m.sum())])
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return {"rows": int(y.size), "mae": float(skm.mean_absolute_error(y, pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
            "r2": float(skm.r2_score(y, pred)) if y.size > 1 else None}


def fairness_audit(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, *,
                   attribute: str, min_group_rows: int = 30) -> dict:
    """Per-group selection rate, TPR, FPR; demographic parity and equalized odds differences.

    Groups smaller than ``min_group_rows`` are reported but excluded from the
    differences (their rates are noise).
    """
    y, pred, groups = np.asarray(y).astype(int), np.asarray(pred).astype(int), np.asarray(groups)
    rows, sel, tpr, fpr = [], [], [], []
    for g in sorted(np.unique(groups).tolist(), key=str):
        m = groups == g
        yg, pg = y[m], pred[m]
        pos, neg = yg == 1, yg == 0
        r = {"group": str(g), "rows": int(m.sum()), "positives": int(pos.sum()),
             "selection_rate": float(pg.mean()),
             "tpr": float(pg[pos].mean()) if pos.any() else None,
             "fpr": float(pg[neg].mean()) if neg.any() else None,
             "included": bool(m.sum() >= min_group_rows)}
        rows.append(r)
        if r["included"]:
            sel.append(r["selection_rate"])
            if r["tpr"] is not None:
                tpr.append(r["tpr"])
            if r["fpr"] is not None:
                fpr.append(r["fpr"])
    gap = lambda v: float(max(v) - min(v)) if len(v) > 1 else 0.0  # noqa: E731
    return {"attribute": attribute, "groups": rows, "min_group_rows": min_group_rows,
            "demographic_parity_difference": gap(sel),
            "equalized_odds_difference": max(gap(tpr), gap(fpr))}
