"""A/B experiments: deterministic assignment (GrowthBook v2 hashing), routing with shadow
variants, and outcome analysis from sufficient statistics (Welch, relative lift, SRM,
guardrails, novelty, CUPED, sequential intervals, multiple testing, power, decision).
"""
from mlops.experiments.analysis import analyze
from mlops.experiments.assignment import assign_many, bucket, bucket_ranges, buckets_many, choose_variant
from mlops.experiments.checks import adjust_pvalues, novelty, srm
from mlops.experiments.comparison import Comparison, compare_moments, non_inferiority, welch
from mlops.experiments.cuped import cuped_compare, cuped_theta
from mlops.experiments.decision import decide
from mlops.experiments.power import duration_days, mde_for, power_at, sample_size
from mlops.experiments.routing import assign_units, route
from mlops.experiments.sequential import sequential_ci, sequential_halfwidth
from mlops.experiments.spec import ExperimentSpec, Guardrail, Metric, Variant, check_weights_unchanged, fingerprint
from mlops.experiments.sufficient import SufficientStats, aggregate_units

__all__ = [
    "ExperimentSpec", "Guardrail", "Metric", "Variant", "SufficientStats", "Comparison",
    "bucket", "buckets_many", "bucket_ranges", "choose_variant", "assign_many",
    "route", "assign_units", "check_weights_unchanged", "fingerprint",
    "aggregate_units", "welch", "compare_moments", "non_inferiority", "srm", "adjust_pvalues",
    "novelty", "cuped_theta", "cuped_compare", "sequential_ci", "sequential_halfwidth",
    "sample_size", "mde_for", "power_at", "duration_days", "analyze", "decide",
]
