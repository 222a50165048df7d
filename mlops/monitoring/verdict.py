"""The drift verdict in words and actions, shared by ``action=monitor`` and ``action=drift``:
which ``on_drift`` actions exist, why the data drifted, the one-line headline, the status.
"""
from __future__ import annotations

from collections.abc import Sequence

from mlops.errors import ConfigError

ON_DRIFT = ("alert", "retrain", "trip_breaker")
# above this many (rows x features) a drift run prints its progress
PROGRESS_CELLS = 5_000_000


def check_on_drift(actions: Sequence[str], *, fix: str = "use alert, retrain and/or trip_breaker"
                   ) -> list[str]:
    """The ``on_drift`` actions as a list; an unknown one is a ConfigError naming the key."""
    actions = list(actions)
    bad = [a for a in actions if a not in ON_DRIFT]
    if bad:
        raise ConfigError(f"unknown action(s) {bad}; valid: {list(ON_DRIFT)}",
                          key="monitoring.on_drift", fix=fix)
    return actions


def drift_reasons(drift: dict, multivariate_acts: bool) -> list[str]:
    """Why the data drifted: per-feature verdicts, and the multivariate test when it may act."""
    mv = drift.get("multivariate") or {}
    quality = drift.get("quality") or []
    return ([f"data drift in {drift['n_drifted']} features"] if drift["dataset_drift"] else []) + \
        ([f"multivariate drift (classifier AUC {mv['auc']:.3f} > {mv['threshold']:.3f})"]
         if mv.get("drift") and multivariate_acts else []) + \
        ([f"data quality: {', '.join(q['feature'] + ' ' + q['issue'] for q in quality)}"] if quality else [])


def drift_headline(drift: dict) -> str:
    """One line on the data drift verdict, saying why when the data were too few."""
    text = (f"{drift['n_drifted']} of {drift['n_features']} features drifted "
            f"({drift['drift_share']:.0%})")
    if drift["n_insufficient"]:
        text += f", {drift['n_insufficient']} with too little data"
    if drift.get("n_unjudgeable"):
        names = [n for n, f in drift["features"].items() if f["status"] == "reference_too_variable"]
        text += (f", {len(names)} not judged ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}: "
                 "the reference varies more than the statistic can; try monitoring.reference: {previous: N})")
    if drift.get("quality"):
        text += f"; data quality alert on {', '.join(q['feature'] for q in drift['quality'])}"
    mv = drift.get("multivariate") or {}
    if mv.get("drift"):
        text += (f"; multivariate drift (classifier AUC {mv['auc']:.3f}"
                 + (")" if mv.get("acts") else ", reported only)"))
    if drift["dataset_status"] == "insufficient_data":
        return f"{text}; insufficient data for a dataset verdict ({drift['dataset_reason']})"
    policy = drift.get("policy") or {}
    share = policy.get("drift_share")
    below = ("no feature past its limit" if policy.get("dataset_rule") == "any feature"
             else f"under the {0.5 if share is None else share:.0%} share for dataset drift")
    return f"{text}; " + ("dataset drift" if drift["dataset_drift"] else below)


def run_status(found: bool, drift: dict) -> str:
    """fail when something drifted, warn when the data were too few for a verdict or a feature
    cannot be judged against the reference, else ok."""
    if found:
        return "fail"
    return "warn" if drift["dataset_status"] == "insufficient_data" or drift.get("n_unjudgeable") else "ok"


def print_progress(done: int, total: int, feature: str) -> None:
    """Progress of a long drift run, every fifth feature and the last."""
    if done == total or done % 5 == 0:
        print(f"  drift: {done}/{total} features ({feature})", flush=True)


def progress_for(rows: int, columns: int):
    """:func:`print_progress` when the run is long enough to need it, else None."""
    return print_progress if rows * columns > PROGRESS_CELLS else None
