"""Drift decisions: which statistic decides each feature, and against which limit.

Two methods (``method``):

* ``calibrated`` (the default): the deciding statistic of a feature is judged against the
  spread of the same statistic over chunks of the reference of the current window's size,
  ``mean + std_multiplier * std`` (3, as NannyML), never below an effect-size floor
  (:mod:`mlops.monitoring.feature_limits`); every feature is decided by the Jensen-Shannon
  distance on the reference's bins (quantile bins for numbers, as NannyML's default),
  whatever the sample size, since the chunks carry the same sampling noise as the window. A large window
  no longer drifts by its size alone, and a reference with seasons or trends widens its own
  limits. It needs a reference that kept its rows in time order (every model registered
  since format 2; ``action=drift`` keeps file order, or time order with a timestamp column);
  without them a feature falls back to the fixed thresholds, with a note.
* ``fixed``: a fixed threshold per test: KS (drift when p < 0.05) when the smaller sample has
  at most ``small_sample_rows`` (1000) valid values, else the normed Wasserstein distance
  (>= 0.1); chi-square (p < 0.05) up to 1000 values, else Jensen-Shannon (>= 0.1). A
  per-feature ``threshold`` override is always fixed.

Everything is overridable: the method, the multiplier and floors, default thresholds per
test, the default test per type, and per-feature ``{"test": ..., "threshold": ...}``.

The dataset verdict (``drift_share``): by default (``None``) with calibrated limits the data
drifted when *any* feature is past its limit, and each limit is set for the family of
``family_size`` statistics judged together (the inputs, and the model's score when its drift
acts): ``std_multiplier`` sigma for the family (Sidak), so a window of 12 features raises a
false alarm as rarely as one 3-sigma test does, and a shift in one or two features of many is
still found. A number (e.g. 0.5, Evidently's convention) asks for that share of features past
their own ``std_multiplier``-sigma limits instead; fixed thresholds use 0.5 when it is None.

Minimum sample sizes (``min_rows`` per deciding test, ``min_reference_rows``): below them a
feature is ``insufficient_data``, never drift. Fixed thresholds need more: the distances
are biased upwards on small samples (N(0,1) against a 100k-row reference, 10 bins, 400
windows: their 95th percentile under no drift falls below the default threshold only at
about 500 rows (Wasserstein 0.1), 300 (JS 0.1) and 100 (PSI 0.2)); KS finds a 0.5 sd shift
with 80% power from about 50 rows, and chi-square needs about 5 expected rows per category
(Cochran), so 50. Calibrated limits carry the small-sample bias in their chunks, so 50
valid values suffice for every statistic. A reference needs 100 valid values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from mlops.constraints import Check, Interval, Options, check, validate
from mlops.errors import ConfigError
from mlops.monitoring.calibration import DEFAULT_MAX_CHUNKS, DEFAULT_MIN_CHUNKS, DEFAULT_STD_MULTIPLIER, family_k
from mlops.monitoring.feature_limits import DEFAULT_FLOORS, chi2_floor

NUMERIC_TESTS = ("ks", "wasserstein", "psi", "js")
CATEGORICAL_TESTS = ("chi2", "psi", "js")
ALL_TESTS = ("ks", "wasserstein", "psi", "js", "chi2")
# p-value tests drift when p < threshold; distance tests drift when distance >= threshold.
PVALUE_TESTS = frozenset({"ks", "chi2"})
DEFAULT_THRESHOLDS = {"ks": 0.05, "wasserstein": 0.1, "psi": 0.2, "js": 0.1, "chi2": 0.05}
# Smallest number of valid current values each deciding test needs (see the module docstring).
DEFAULT_MIN_ROWS = {"ks": 50, "chi2": 50, "psi": 100, "js": 300, "wasserstein": 500}
DEFAULT_MIN_ROWS_CALIBRATED = {test: 50 for test in ALL_TESTS}
METHODS = ("calibrated", "fixed")
DEFAULT_MIN_REFERENCE_ROWS = 100
DEFAULT_MIN_ROWS_DATASET = 50
# Per-feature and dataset status words (beside the drift true/false flag). UNJUDGEABLE: the
# calibrated limit lies at or past the most the statistic can reach (the reference's own
# chunks differ that much), so no window could ever cross it.
DRIFT, NO_DRIFT, INSUFFICIENT = "drift", "no_drift", "insufficient_data"
UNJUDGEABLE = "reference_too_variable"
_TESTS_BY_TYPE = {"numeric": NUMERIC_TESTS, "categorical": CATEGORICAL_TESTS}


@dataclass
class DriftPolicy:
    """How drift is decided, per feature and for the whole dataset.

    >>> policy = DriftPolicy(method="fixed", thresholds={"psi": 0.25}, overrides={"age": {"test": "psi"}})
    >>> policy.decide("age", "numeric", ref_valid=50_000)
    ('psi', 0.25)
    >>> policy.decide("income", "numeric", ref_valid=500)
    ('ks', 0.05)
    >>> policy.decide("income", "numeric", ref_valid=50_000, cur_valid=200)  # small window: KS
    ('ks', 0.05)
    >>> policy.sufficient("ks", ref_valid=50_000, cur_valid=10)
    '10 valid current value(s); ks needs >= 50 (min_rows.ks)'
    >>> DriftPolicy().decide("income", "numeric", ref_valid=50_000, cur_valid=200)  # calibrated
    ('js', 0.1)
    """

    n_bins: int = 10
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    small_sample_rows: int = 1000
    overrides: dict[str, dict] = field(default_factory=dict)
    drift_share: float | None = None    # None: any feature past its family-wise limit (module doc)
    numeric_test: str | None = None
    categorical_test: str | None = None
    min_rows: dict[str, int] = field(default_factory=dict)   # empty: the method's defaults
    min_reference_rows: int = DEFAULT_MIN_REFERENCE_ROWS
    min_rows_dataset: int = DEFAULT_MIN_ROWS_DATASET
    method: str = "calibrated"
    std_multiplier: float = DEFAULT_STD_MULTIPLIER
    effect_floors: dict[str, float] = field(default_factory=dict)   # empty: DEFAULT_FLOORS
    min_chunks: int = DEFAULT_MIN_CHUNKS
    max_chunks: int = DEFAULT_MAX_CHUNKS
    family_size: int = 1        # statistics judged together (set by detect_drift)

    @property
    def calibrated(self) -> bool:
        return self.method == "calibrated"

    @property
    def any_feature(self) -> bool:
        """The dataset drifts when any feature does (limits set for the family)."""
        return self.share is None

    @property
    def family_rule(self) -> str:
        """What each limit's sigma level stands for when any feature decides."""
        return f"{self.std_multiplier:g} sigma for the {self.family_size} judged together"

    @property
    def share(self) -> float | None:
        """The share of drifted features that makes dataset drift (None: any feature)."""
        if self.drift_share is not None:
            return self.drift_share
        return None if self.calibrated else 0.5

    @property
    def drift_k(self) -> float:
        """The sigma level of each feature's calibrated drift limit: ``std_multiplier`` for the
        whole family when any feature decides, else for the feature alone.

        >>> round(DriftPolicy(family_size=12).drift_k, 3), DriftPolicy(drift_share=0.5, family_size=12).drift_k
        (3.689, 3.0)
        """
        return family_k(self.std_multiplier, self.family_size) if self.any_feature else self.std_multiplier

    def __post_init__(self) -> None:
        validate(self, {
            "n_bins": [Interval(int, 2, None)], "small_sample_rows": _COUNT,
            "thresholds": [dict], "overrides": [dict], "min_rows": [dict],
            "numeric_test": [_one_of_tests(NUMERIC_TESTS), None],
            "categorical_test": [_one_of_tests(CATEGORICAL_TESTS), None],
            "drift_share": [Interval(float, 0, 1, closed="right"), None],
            "family_size": [Interval(int, 1, None)],
            "min_reference_rows": _COUNT, "min_rows_dataset": _COUNT,
            "method": [Options(*METHODS)], "std_multiplier": [Interval(float, 0, None, closed="neither")],
            "effect_floors": [dict], "min_chunks": [Interval(int, 2, None)],
            "max_chunks": [Interval(int, 2, None)],
        })
        for test, value in self.effect_floors.items():
            check(f"effect_floors.{test}", test, [_one_of_tests(ALL_TESTS)])
            check(f"effect_floors.{test}", value, [Interval(float, 0, None)])
        self.effect_floors = {**DEFAULT_FLOORS, **{str(k): float(v) for k, v in self.effect_floors.items()}}
        self.std_multiplier = float(self.std_multiplier)
        for test in self.thresholds:
            check(f"thresholds.{test}", test, [_one_of_tests(ALL_TESTS)])
        merged = {**DEFAULT_THRESHOLDS, **{k: v for k, v in self.thresholds.items()}}
        self.thresholds = {test: check_threshold(test, value, key=f"thresholds.{test}")
                           for test, value in merged.items()}
        self.overrides = {str(k): self._check_override(str(k), v) for k, v in self.overrides.items()}
        self.drift_share = None if self.drift_share is None else float(self.drift_share)
        for test, value in self.min_rows.items():
            check(f"min_rows.{test}", test, [_one_of_tests(ALL_TESTS)])
            check(f"min_rows.{test}", value, _COUNT)
        defaults = DEFAULT_MIN_ROWS_CALIBRATED if self.calibrated else DEFAULT_MIN_ROWS
        self.min_rows = {**defaults, **{str(k): int(v) for k, v in self.min_rows.items()}}

    def decide(self, feature: str, kind: str, ref_valid: int,
               cur_valid: int | None = None) -> tuple[str, float]:
        """``(test, threshold)`` deciding ``feature`` of type ``kind`` ('numeric'/'categorical').

        ``ref_valid`` / ``cur_valid`` are the numbers of valid reference / current values: with
        fixed thresholds the default test is the p-value test when the smaller of the two is at
        most ``small_sample_rows`` (distances are biased upwards on small samples). Calibrated
        limits use the distances at any size. The threshold returned is the fixed one; a
        calibrated limit replaces it when the reference allows (see :meth:`is_fixed`).
        """
        override = self.overrides.get(feature, {})
        small = min(ref_valid, ref_valid if cur_valid is None else cur_valid) <= self.small_sample_rows
        small = small and not self.calibrated
        if kind == "numeric" and self.calibrated:
            # Jensen-Shannon on the reference's quantile bins: on real data with heavy tails
            # (storm pressures, flight delays) it separated a 0.5 sd shift from the natural
            # spread of chunks where the normed Wasserstein distance, pulled by the tails, did not
            default = self.numeric_test or "js"
        elif kind == "numeric":
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

    def is_fixed(self, feature: str) -> bool:
        """True when ``feature`` is decided by a fixed threshold (method or override)."""
        return not self.calibrated or "threshold" in self.overrides.get(feature, {})

    def floor(self, test: str, cur_valid: int) -> float:
        """The effect-size floor of a calibrated limit (chi-square's grows with the sample)."""
        value = self.effect_floors[test]
        return chi2_floor(value, cur_valid) if test == "chi2" else value

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
                "categorical_test": self.categorical_test, "method": self.method,
                "std_multiplier": self.std_multiplier, "effect_floors": dict(self.effect_floors),
                "min_chunks": self.min_chunks, "max_chunks": self.max_chunks,
                "dataset_rule": "any feature" if self.share is None else f"share >= {self.share:g}",
                "family_rule": self.family_rule if self.any_feature else None,
                "family_size": self.family_size, "drift_k": self.drift_k}

    def _check_override(self, feature: str, override: object) -> dict:
        key = f"overrides.{feature}"
        check(key, override, [Check(lambda v: isinstance(v, Mapping),
                                    "a mapping with 'test' and/or 'threshold'")])
        unknown = sorted(set(override) - {"test", "threshold"})
        if unknown:
            raise ConfigError(f"has unknown key(s) {unknown}; allowed keys are 'test' and "
                              f"'threshold'", key=key, fix=f"remove {unknown[0]!r}")
        out: dict = {}
        if "test" in override:
            out["test"] = str(check(f"{key}.test", override["test"], [_one_of_tests(ALL_TESTS)]))
        if "threshold" in override:
            # Range is checked against the override's test now, or the default test later.
            test = out.get("test")
            out["threshold"] = (check_threshold(test, override["threshold"], key=f"{key}.threshold")
                                if test else float(check(f"{key}.threshold",
                                                         override["threshold"], _POSITIVE)))
        return out


def is_drift(test: str, score: float | None, threshold: float) -> bool:
    """Drift decision: p-value tests drift when ``score < threshold``, distances when ``>=``.

    An undefined score (no data) never drifts.
    """
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return False
    return score < threshold if test in PVALUE_TESTS else score >= threshold


def check_threshold(test: str, value: object, *, key: str) -> float:
    """Validate a threshold for ``test`` and return it as a float: p-values in (0, 1), the
    base-2 Jensen-Shannon distance in (0, 1] (it is at most 1), other distances > 0."""
    rules = _THRESHOLD_RULES.get(test, _POSITIVE)
    return float(check(key, value, rules, fix=f"use e.g. {DEFAULT_THRESHOLDS.get(test, 0.1)}"))


def _one_of_tests(allowed: tuple[str, ...]) -> Check:
    return Check(lambda v: v in allowed, f"a test among {list(allowed)}")


# declared rules (mlops.constraints)
_COUNT = [Interval(int, 0, None)]
_POSITIVE = [Interval(float, 0, None, closed="neither")]
_PVALUE = Interval(float, 0, 1, closed="neither")
_THRESHOLD_RULES = {
    "ks": [Check(_PVALUE.is_satisfied_by, "a p-value: a float in (0, 1)")],
    "chi2": [Check(_PVALUE.is_satisfied_by, "a p-value: a float in (0, 1)")],
    "js": [Interval(float, 0, 1, closed="right")],
}
