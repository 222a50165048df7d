"""Champion/challenger on the SAME test window.

Stored metrics of two versions come from different periods, so a fair "not worse than
production" needs both scored on the same rows. The champion scores with the plan it
carries (its own features of the same events when its spec differs from the candidate's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from mlops.features.compile import FeaturePlan
from mlops.features.offline import compute_features
from mlops.training.metrics import evaluate
from mlops.training.task import label_target, score_frame

SHOWN = {"regression": ("rmse", "mae", "r2"), "classification": ("roc_auc", "pr_auc", "precision", "recall")}
LIFTED = {"regression": ("rmse", "mae", "r2"), "classification": ("roc_auc", "pr_auc")}  # ranking metrics


@dataclass(frozen=True)
class Champion:
    """The registered version to compare with (loaded by the caller).

    ``note`` set (model/plan None): nothing to score, the note says why. ``events`` is
    the full history, used only when the champion's plan differs from the candidate's.
    """

    alias: str
    version: int | None = None
    model: Any = None
    plan: FeaturePlan | None = None
    note: str | None = None
    events: pl.LazyFrame | None = None
    event_id: str | None = None
    threshold: float | None = 0.5  # its own decision threshold (its policy; 0.5 = predict())

    def header(self) -> dict:
        return {"alias": self.alias} if self.version is None else \
            {"alias": self.alias, "version": self.version}


def compare_with_champion(champ: Champion, *, plan: FeaturePlan, task: str, test: pl.DataFrame,
                          metrics: dict) -> tuple[dict, dict]:
    """(the report's ``champion`` section, ``{<metric>_lift_vs_<alias>: candidate - champion}``).

    ``metrics`` are the candidate's test metrics (flat); lifts are given for the ranking
    metrics both sides have. The champion decides at its own threshold (its policy).
    """
    out = champ.header()
    if champ.note is not None:
        return {**out, "note": champ.note}, {}
    rows, note = (test, None) if champ.plan.spec_hash == plan.spec_hash else \
        champion_rows(champ, plan, test)
    if rows is None:
        return {**out, "note": note}, {}
    m = evaluate(task, label_target(test, plan.label.column, task),
                 score_frame(champ.model, champ.plan, rows), champ.threshold)
    lifts = {k: metrics[k] - m[k] for k in LIFTED[task]
             if m.get(k) is not None and metrics.get(k) is not None}
    section = {**out, "plan": {"name": champ.plan.name, "hash": champ.plan.spec_hash},
               "threshold": champ.threshold,
               "metrics": {k: m.get(k) for k in SHOWN[task]}, "lift": lifts}
    return section, {f"{k}_lift_vs_{champ.alias}": v for k, v in lifts.items()}


def champion_rows(champ: Champion, plan: FeaturePlan, test: pl.DataFrame
                  ) -> tuple[pl.DataFrame | None, str | None]:
    """The champion's features (its own plan, over the full history) of the test events,
    in ``test`` order; matched on the event id, else on (entity, timestamp)."""
    cplan, eid = champ.plan, champ.event_id
    key = [eid] if eid and eid in test.columns else [plan.entity, plan.timestamp]
    if key != [eid] and (cplan.entity, cplan.timestamp) != (plan.entity, plan.timestamp):
        return None, (f"its plan {cplan.name} keys events differently; set data.event_id "
                      "to compare on the same events (stored metrics only)")
    ts = cplan.timestamp
    table = compute_features(cplan, champ.events, keep=key)
    if ts == plan.timestamp:  # only the test days are needed
        table = table.filter(pl.col(ts).is_between(test[ts].min(), test[ts].max()))
    table = table.select(*key, *[c for c in cplan.feature_names if c not in key]).collect()
    if table.select(key).is_duplicated().any():
        return None, (f"events are not unique by {key}; set data.event_id to compare on the "
                      "same events (stored metrics only)")
    rows = test.select(key).join(table.with_columns(pl.lit(True).alias("__hit")), on=key,
                                 how="left", maintain_order="left")
    if rows["__hit"].null_count():
        return None, f"{rows['__hit'].null_count()} test events have no champion features"
    return rows.drop("__hit"), None
