"""Model registry: immutable versions, content-addressed skops artefacts, lineage,
aliases with promotion gates and approvals, rollback and an append-only audit log.

    >>> from mlops.registry import Registry, DEFAULT_TRUSTED_TYPES
    >>> reg = Registry(home, policies={"production": [{"metric": "roc_auc", "min": 0.7}]})
"""
from mlops.registry.artifacts import DEFAULT_TRUSTED_TYPES
from mlops.registry.gates import (
    ApprovalGate,
    FairnessGate,
    Gate,
    GatePolicy,
    GateResult,
    MetricGate,
    evaluate_gates,
    parse_gate,
)
from mlops.registry.lineage import METADATA_KEYS, ModelVersion
from mlops.registry.registry import Registry

__all__ = [
    "DEFAULT_TRUSTED_TYPES",
    "METADATA_KEYS",
    "ApprovalGate",
    "FairnessGate",
    "Gate",
    "GatePolicy",
    "GateResult",
    "MetricGate",
    "ModelVersion",
    "Registry",
    "evaluate_gates",
    "parse_gate",
]
