"""Model registry: immutable versions, content-addressed skops artefacts, lineage,
aliases with promotion gates and approvals, rollback and an append-only audit log.

    >>> from mlops.registry import Registry, DEFAULT_TRUSTED_TYPES
    >>> reg = Registry(home, policies={"production": [{"metric": "roc_auc", "min": 0.7}]})

Names are imported lazily (as in :mod:`mlops.monitoring`): every run redacts its record
with :mod:`mlops.registry.redact`, and must not pay for skops unless it opens a registry.
"""
from __future__ import annotations

from mlops.lazy_exports import module_getattr

_EXPORTS = {
    "DEFAULT_TRUSTED_TYPES": "artifacts",
    "ApprovalGate": "gates", "FairnessGate": "gates", "Gate": "gates", "GatePolicy": "gates",
    "GateResult": "gates", "MetricGate": "gates", "evaluate_gates": "gates", "parse_gate": "gates",
    "METADATA_KEYS": "lineage", "ModelVersion": "lineage", "Registry": "registry",
}
__all__ = sorted(_EXPORTS)


__getattr__ = module_getattr(__name__, _EXPORTS)
