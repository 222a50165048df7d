"""Drift decisions: which test decides each feature, and at what threshold.

Defaults: a numeric feature is decided by KS (drift when p < 0.05) when the smaller of its
reference and current samples has at most ``small_sample_rows`` (1000) valid values, else by
the normed Wasserstein distance (drift when >= 0.1); a categorical feature by chi-square
(p < 0.05) up to 1000 values, else by the Jensen-Shannon distance (drift when >= 0.1). PSI
(default 0.2) can decide too. Everything is overridable: default thresholds per test, the
default test per type, and per-feature ``{"test": ..., "threshold": ...}``. The dataset drifts
when the share of drifted features reaches ``drift_share`` (0.5).

Minimum sample sizes (``min_rows`` per deciding test, ``min_reference_rows``): below them a
feature is ``insufficient_data``, never drift. The defaults come from the statistics' behaviour
with no drift at all (N(0,1) against a 100k-row reference, 10 bins, 400 windows each): the
distances are biased upwards on small samples, and their 95th percentile under no drift falls
below the default threshold only at about 500 rows (Wasserstein 0.1), 300 (JS 0.1) and 100
(PSI 0.2); one row is 1.9 sd from a distribution in Wasserstein terms. KS and chi-square
p-values stay calibrated at any size, but KS detects a 0.5 sd shift with 80% power only from
about 50 rows, and chi-square needs about 5 expected rows per category (Cochran), so 50.
A reference needs 100 valid values (10 quantile bins of about 10 values each).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from mlops.errors import ConfigError

NUMERIC_TESTS = ("ks", "wasserstein", "psi", "js")
CATEGORICAL_TESTS = ("chi2", "psi", "js")
ALL_TESTS = ("ks", "wasserstein", "psi", "js", "chi2")
# p-value tests drift when p < threshold; distance tests drift when distance >= threshold.
PVALUE_TESTS = frozenset({"ks", "chi2"})
DEFAULT_THRESHOLDS = {"ks": 0.05, "wasserstein": 0.1, "psi": 0.2, "js": 0.1, "chi2": 0.05}
# Smallest number of valid current values each deciding test needs (see the module docstring).
DEFAULT_MIN_ROWS = {"ks": 50, "chi2": 50, "psi": 100, "js": 300, "wasserstein": 500}
DEFAULT_MIN_REFERENCE_ROWS = 100
DEFAULT_MIN_ROWS_DATASET = 50
# Per-feature and dataset status words (beside the drift true/false flag).
DRIFT, NO_DRIFT, INSUFFICIENT = "drift", "no_drift", "insufficient_data"
_TESTS_BY_TYPE = {"numeric": NUMERIC_TESTS, "categorical": CATEGORICAL_TESTS}


@dataclass
class DriftPolicy:
    """How drift is decided, per feature and for the whole dataset.

    >>> policy = DriftPolicy(thresholds={"psi": 0.25}, overrides={"age": {"test": "psi"}})
    >>> policy.decide("age", "numeric", ref_valid=50_000)
    ('psi', 0.25)
    >>> policy.decide("income", "numeric", ref_valid=500)
    ('ks', 0.05)
    >>> policy.decide("income", "numeric", ref_valid=50_000, cur_valid=200)  # small window: KS
    ('ks', 0.05)
    >>> policy.sufficient("ks", ref_valid=50_000, cur_valid=10)
    '10 valid current value(s); ks needs >= 50 (min_rows.ks)'
    """

    n_bins: int = 10
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    small_sample_rows: int = 1000
    overrides: dict[str, dict] = field(default_factory=dict)
    drift_share: float = 0.5
    numeric_test: str | None = None
    categorical_test: str | None = None
    min_rows: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_ROWS))
    min_reference_rows: int = DEFAULT_MIN_REFERENCE_ROWS
    min_rows_dataset: int = DEFAULT_MIN_ROWS_DATASET

    def __post_init__(self) -> None:
        _require_int("n_bins", self.n_bins, minimum=2)
        _require_int("small_sample_rows", self.small_sample_rows, minimum=0)
        if not isinstance(self.thresholds, Mapping):
            raise ConfigError(f"The 'thresholds' parameter must be a mapping test -> threshold; "
                              f"got {type(self.thresholds).__name__} instead", key="thresholds")
        for test in self.thresholds:
            _require_test(f"thresholds.{test}", test, ALL_TESTS)
        merged = {**DEFAULT_THRESHOLDS, **{k: v for k, v in self.thresholds.items()}}
        for test, value in merged.items():
            merged[test] = check_threshold(test, value, key=f"thresholds.{test}")
        self.thresholds = merged
        for key, kind in (("numeric_test", "numeric"), ("categorical_test", "categorical")):
            value = getattr(self, key)
            if value is not None:
                _require_test(key, value, _TESTS_BY_TYPE[kind])
        if not isinstance(self.overrides, Mapping):
            raise ConfigError(f"The 'overrides' parameter must be a mapping feature -> "
                              f"{{test, threshold}}; got {type(self.overrides).__name__} instead",
                              key="overrides")
        self.overrides = {str(k): self._check_override(str(k), v) for k, v in self.overrides.items()}
        if (isinstance(self.drift_share, bool) or not isinstance(self.drift_share, (int, float))
                or not 0.0 < float(self.drift_share) <= 1.0):
            raise ConfigError(f"The 'drift_share' parameter must be a float in (0, 1]; got "
                              f"{self.drift_share!r} instead", key="drift_share")
        self.drift_share = float(self.drift_share)
        if not isinstance(self.min_rows, Mapping):
            raise ConfigError(f"The 'min_rows' parameter must be a mapping test -> rows; got "
                              f"{type(self.min_rows).__name__} instead", key="min_rows")
        for test, value in self.min_rows.items():
            _require_test(f"min_rows.{test}", test, ALL_TESTS)
            _require_int(f"min_rows.{test}", value, minimum=0)
        self.min_rows = {**DEFAULT_MIN_ROWS, **{str(k): int(v) for k, v in self.min_rows.items()}}
        _require_int("min_reference_rows", self.min_reference_rows, minimum=0)
        _require_int("min_rows_dataset", self.min_rows_dataset, minimum=0)

    def decide(self, feature: str, kind: str, ref_valid: int,
               cur_valid: int | None = None) -> tuple[str, float]:
        """``(test, threshold)`` deciding ``feature`` of type ``kind`` ('numeric'/'categorical').

        ``ref_valid`` / ``cur_valid`` are the numbers of valid reference / current values: the
        default test is the p-value test when the smaller of the two is at most
        ``small_sample_rows`` (distances are biased upwards on small samples).
        """
        override = self.overrides.get(feature, {})
        small = min(ref_valid, ref_valid if cur_valid is None else cur_valid) <= self.small_sample_rows
        if kind == "numeric":
            default = self.numeric_test or ("ks" if small else "wasserstein")
        else:
            default = self.categorical_test or ("chi2" if small else "js")
        test = override.get("test", default)
        allowed = _TESTS_BY_TYPE[kind]
        if test not in allowed:
            raise ConfigError(f"the test {test!r} cannot decide the {kind} feature {feature!r}; "
                              f"it must be one of {list(allowed)}",
                              key=f"overrides.{feature}.test", fix=f"use one of {list(allowed)}")
        if "threshold" in override:
            threshold = check_threshold(test, override["threshold"],
                                        key=f"overrides.{feature}.threshold")
        else:
            threshold = self.thresholds[test]
        return test, threshold

    def sufficient(self, test: str, *, ref_valid: int, cur_valid: int) -> str | None:
        """None when ``test`` may decide on these sample sizes, else the reason it may not."""
        if ref_valid < self.min_reference_rows:
            return (f"{ref_valid} valid reference value(s); a decision needs >= "
                    f"{self.min_reference_rows} (min_reference_rows)")
        need = self.min_rows.get(test, 0)
        if cur_valid < need:
            return f"{cur_valid} valid current value(s); {test} needs >= {need} (min_rows.{test})"
        return None

    def to_dict(self) -> dict:
        """JSON-safe copy of the effective policy (for monitor.json and reports)."""
        return {"n_bins": self.n_bins, "thresholds": dict(self.thresholds),
                "small_sample_rows": self.small_sample_rows, "min_rows": dict(self.min_rows),
                "min_reference_rows": self.min_reference_rows,
                "min_rows_dataset": self.min_rows_dataset,
                "overrides": {k: dict(v) for k, v in self.overrides.items()},
                "drift_share": self.drift_share, "numeric_test": self.numeric_test,
                "categorical_test": self.categorical_test}

    def _check_override(self, feature: str, override: object) -> dict:
        key = f"overrides.{feature}"
        if not isinstance(override, Mapping):
            raise ConfigError(f"must be a mapping with 'test' and/or 'threshold'; got "
                              f"{override!r} instead", key=key)
        unknown = sorted(set(override) - {"test", "threshold"})
        if unknown:
            raise ConfigError(f"has unknown key(s) {unknown}; allowed keys are 'test' and "
                              f"'threshold'", key=key)
        out: dict = {}
        if "test" in override:
            out["test"] = _require_test(f"{key}.test", override["test"], ALL_TESTS)
        if "threshold" in override:
            # Range is checked against the override's test now, or the default test later.
            test = out.get("test")
            out["threshold"] = (check_threshold(test, override["threshold"], key=f"{key}.threshold")
                                if test else _require_positive(f"{key}.threshold",
                                                               override["threshold"]))
        return out


def is_drift(test: str, score: float | None, threshold: float) -> bool:
    """Drift decision: p-value tests drift when ``score < threshold``, distances when ``>=``.

    An undefined score (no data) never drifts.
    """
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return False
    return score < threshold if test in PVALUE_TESTS else score >= threshold


def check_threshold(test: str, value: object, *, key: str) -> float:
    """Validate a threshold for ``test`` and return it as a float."""
    value = _require_positive(key, value)
    if test in PVALUE_TESTS and not value < 1.0:
        raise ConfigError(f"The threshold for {test!r} is a p-value and must be a float in "
                          f"(0, 1); got {value!r} instead", key=key, fix="use e.g. 0.05")
    if test == "js" and value > 1.0:
        raise ConfigError(f"The threshold for 'js' must be a float in (0, 1] (the base-2 "
                          f"Jensen-Shannon distance is at most 1); got {value!r} instead",
                          key=key, fix="use e.g. 0.1")
    return value


def _require_positive(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0):
        raise ConfigError(f"must be a finite number > 0; got {value!r} instead", key=key)
    return float(value)


def _require_test(key: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"must be a test among {list(allowed)}; got {value!r} instead",
                          key=key, fix=f"use one of {list(allowed)}")
    return str(value)


def _require_int(key: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"The '{key}' parameter must be an int >= {minimum}; got "
                          f"{value!r} instead", key=key)
