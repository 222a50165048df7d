"""Display-only values for registry.html (``action=registry | promote | approve | rollback |
breaker_reset | verify | gc | keygen | migrate``), and the verification summary printed on
the terminal."""
from __future__ import annotations

import sys

from mlops.reports import svg


def print_integrity(integrity: dict) -> int:
    """Print the chain head, each note and each problem (one line each); the exit code:
    0 ok (notes are what killed writers left, not tampering), 4 failed."""
    print(f"chain head: {integrity['head']} ({integrity['events']} events)")
    for n in integrity.get("notes", []):
        print(f"note: {n['kind']}: {n['note']}")
    for p in integrity["problems"]:
        print(f"integrity: {p['kind']}: {p['problem']}", file=sys.stderr)
    if not integrity["ok"]:
        print(f"error: registry verification failed: {len(integrity['problems'])} problem(s)", file=sys.stderr)
    return 0 if integrity["ok"] else 4


def registry_page(**values) -> dict:
    """Context for the registry template without the version table and chart."""
    return {"version_rows": [], "versions": [], "metric_names": [], "auc_chart": None, "audit_rows": [],
            "cards": [], **values}


def _window(split: dict | None) -> str:
    """The test days a version's metrics come from: versions tested on different days
    are not directly comparable (see auc_lift_vs_production for a same-days comparison)."""
    if not split or len(split.get("bounds", [])) < 4:
        return "—"
    return f"{split['bounds'][2][:10]} → {split['bounds'][3][:10]}"


def registry_display(model: dict | None, snap: dict) -> dict:
    """registry.html: the version table (metrics, plan, approvals, test window), the
    test ROC-AUC per version, the audit log and the alias cards."""
    versions = model["versions"] if model else []
    aliases = model["aliases"] if model else {}
    metric_names = ["roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall"]
    rows = []
    for v in versions:
        on = [a for a, n in aliases.items() if n == v["version"]]
        rows.append({"version": v["version"], "aliases": ", ".join(on) or "",
                     "created": v["created_at"], "who": v["who"],
                     "estimator": (v.get("tags") or {}).get("estimator", v["model_class"]),
                     "plan": f"{v.get('feature_plan_name')} ({(v.get('feature_plan_hash') or '')[:8]})",
                     "approvals": ", ".join(a["approver"] if isinstance(a, dict) else str(a)
                                            for a in v.get("approvals", [])),
                     "test_window": _window((v.get("tags") or {}).get("split")),
                     "auc_lift_vs_production": v["metrics"].get("roc_auc_lift_vs_production"),
                     **{m: v["metrics"].get(m) for m in metric_names}})
    chart = None
    if versions:
        chart = svg.bar_chart([(f"v{v['version']}", v["metrics"].get("roc_auc")) for v in versions],
                              xlabel="test ROC-AUC", ylabel="version")
    return {"version_rows": rows, "metric_names": metric_names, "auc_chart": chart,
            "audit_rows": list(reversed(snap["audit"]))[:200], "versions": versions,
            "cards": [{"label": "versions", "value": len(versions)},
                      *[{"label": a, "value": f"v{n}"} for a, n in sorted(aliases.items())]]}


def registry_report(reg, name: str, *, status: str, headline: str, details: dict,
                    expect_head: str | None = None) -> tuple[dict, dict]:
    """(registry.json, registry.html's context) for model ``name``: the registry's snapshot,
    its aliases, the verification (``expect_head``: a chain head that must still be in the
    chain), what the action did (``details``)."""
    snap = reg.snapshot()
    model = next((m for m in snap["models"] if m["name"] == name), None)
    result = {"status": status, "headline": headline, "model": name,
              "aliases": model["aliases"] if model else {}, "details": details,
              "integrity": reg.verify(expect_head=expect_head or None), "registry": snap}
    return result, registry_display(model, snap)
