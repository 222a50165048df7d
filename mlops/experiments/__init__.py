"""A/B experiments: deterministic assignment (GrowthBook v2 hashing), routing with shadow
variants, and outcome analysis from sufficient statistics (Welch, relative lift, SRM,
guardrails, novelty, CUPED, sequential intervals, multiple testing, power, decision).

Names are imported lazily so that the config schema, which needs only the specs
(``spec``, ``outcomes``, ``simulation``), does not load scipy.stats with the analysis.
"""
from __future__ import annotations

from mlops.lazy_exports import module_getattr

_EXPORTS = {
    "analyze": "analysis",
    "assign_many": "assignment", "bucket": "assignment", "bucket_ranges": "assignment",
    "buckets_many": "assignment", "choose_variant": "assignment",
    "adjust_pvalues": "checks", "novelty": "checks", "srm": "checks",
    "Comparison": "comparison", "compare_moments": "comparison", "non_inferiority": "comparison",
    "welch": "comparison",
    "cuped_compare": "cuped", "cuped_theta": "cuped",
    "decide": "decision",
    "duration_days": "power", "mde_for": "power", "power_at": "power", "sample_size": "power",
    "assign_units": "routing", "route": "routing",
    "sequential_ci": "sequential", "sequential_halfwidth": "sequential",
    "ExperimentSpec": "spec", "Guardrail": "spec", "Metric": "spec", "Variant": "spec",
    "check_weights_unchanged": "spec", "fingerprint": "spec",
    "SufficientStats": "sufficient", "aggregate_units": "sufficient",
}
__all__ = sorted(_EXPORTS)


__getattr__ = module_getattr(__name__, _EXPORTS)
