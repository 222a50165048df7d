"""The declarative A/B experiment definition, validated when built.

``ExperimentSpec(**plain_dict)`` works: nested variants / metrics / guardrails may be
given as dicts (what YAML gives) and are converted to the dataclasses below.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from mlops.constraints import Check, Interval, Options, check, validate
from mlops.errors import ExperimentError

DIRECTIONS = ("increase", "decrease")
MARGIN_TYPES = ("absolute", "relative")
MDE_TYPES = ("relative", "absolute")
CORRECTIONS = ("holm", "bh", "none")
_WEIGHT_TOL = 1e-9


def _fail(key: str, must: str, got: Any, fix: str | None = None) -> ExperimentError:
    return ExperimentError(f"must be {must}; got {got!r} instead", key=key,
                           fix=fix or f"set {key} to {must}")


# declared rules (mlops.constraints), checked by _check
_NAME = [Check(lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty str")]
_PROB = [Interval(float, 0, 1, closed="neither")]
_POSITIVE = [Interval(float, 0, None, closed="neither")]
_AT_LEAST_0 = [Interval(float, 0, None)]


def _check(key: str, value: Any, rules: list) -> Any:
    """``value`` when it satisfies one of ``rules``; else an ExperimentError naming ``key``."""
    return check(key, value, rules, error=ExperimentError)


@dataclass
class Variant:
    """One arm: ``model`` is a registry version or alias string (e.g. ``"fraud@champion"``).

    Shadow variants take no traffic (weight 0): they are scored and logged, never served.
    """

    name: str
    model: str
    weight: float = 0.0
    shadow: bool = False

    def __post_init__(self) -> None:
        _check("variants[].name", self.name, _NAME)
        _check(f"variants[{self.name}].model", self.model, _NAME)
        _check(f"variants[{self.name}].shadow", self.shadow, [bool])
        key = f"variants[{self.name}].weight"
        if self.shadow:
            _check(key, self.weight, [Check(lambda w: w == 0 and not isinstance(w, bool),
                                            "0 for a shadow variant (shadows take no traffic)")])
        else:
            _check(key, self.weight, [Interval(float, 0, 1, closed="right")])
        self.weight = float(self.weight)


@dataclass
class Metric:
    """A metric and the direction that counts as better."""

    name: str
    direction: str = "increase"

    def __post_init__(self) -> None:
        _check("metric.name", self.name, _NAME)
        _check(f"metrics[{self.name}].direction", self.direction, [Options(*DIRECTIONS)])


@dataclass
class Guardrail:
    """A metric the treatment must not harm by ``margin`` or more (non-inferiority).

    ``direction`` is the good direction of the metric (latency: "decrease");
    ``margin_type`` "absolute" is in metric units, "relative" a fraction of the control mean.
    """

    name: str
    direction: str = "increase"
    margin: float = 0.0
    margin_type: str = "relative"

    def __post_init__(self) -> None:
        key = f"guardrails[{self.name}]"
        _check("guardrails[].name", self.name, _NAME)
        _check(f"{key}.direction", self.direction, [Options(*DIRECTIONS)])
        _check(f"{key}.margin_type", self.margin_type, [Options(*MARGIN_TYPES)])
        self.margin = float(_check(f"{key}.margin", self.margin, _AT_LEAST_0))


def _coerce(kind: type, value: Any, key: str) -> Any:
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and kind is Metric:
        return Metric(name=value)
    if isinstance(value, dict):
        try:
            return kind(**value)
        except TypeError as exc:
            raise ExperimentError(f"invalid fields in {key}: {exc}", key=key,
                                  fix=f"use the fields of {kind.__name__}") from None
    raise _fail(key, f"a {kind.__name__} or a dict", value)


@dataclass
class ExperimentSpec:
    """An A/B test: who is randomised, which models are compared, how it is judged.

    - ``seed`` (default: ``key``) and the served variants' ordered weights decide who gets
      what; ``control`` defaults to the first variant.
    - ``alpha`` (two-sided), ``power`` and ``mde`` (``mde_type`` "relative" to the control
      mean, or "absolute") drive significance and the power / remaining-sample report.
    - ``min_duration_days``: no ship / do-not-ship decision before that.
    - ``cuped_covariate``: name of the pre-period column; the caller aggregates it with
      ``aggregate_units(covariate_col=...)`` and the analysis then applies CUPED.
    - ``sequential`` / ``sequential_tuning`` (N*): always-valid intervals gate significance.
    - ``correction``: "holm" | "bh" | "none" across treatments and secondary metrics.

    >>> spec = ExperimentSpec(key="ranker-v2", seed="ranker-v2", variants=[
    ...     {"name": "control", "model": "ranker@champion", "weight": 0.5},
    ...     {"name": "treatment", "model": "ranker@challenger", "weight": 0.5}],
    ...     primary_metric={"name": "conversion", "direction": "increase"})
    >>> spec.control
    'control'
    """

    key: str
    variants: list[Variant]
    primary_metric: Metric
    seed: str = ""
    name: str = ""
    unit: str = "unit_id"                 # the randomisation unit column; set it per experiment
    control: str | None = None
    secondary_metrics: list[Metric] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.02
    mde_type: str = "relative"
    min_duration_days: float = 7.0
    cuped_covariate: str | None = None
    sequential: bool = False
    sequential_tuning: float = 5000.0
    correction: str = "holm"

    def __post_init__(self) -> None:
        _check("key", self.key, _NAME)
        if self.seed in ("", None):
            self.seed = self.key  # GrowthBook's default: the experiment key seeds the hash
        _check("seed", self.seed, _NAME)
        self.name = self.name or self.key
        _check("unit", self.unit, _NAME)
        self._check_variants()
        self._check_metrics()
        validate(self, {
            "alpha": _PROB, "power": _PROB, "mde": _POSITIVE, "mde_type": [Options(*MDE_TYPES)],
            "min_duration_days": _AT_LEAST_0, "cuped_covariate": [*_NAME, None],
            "sequential": [bool],
            # N*, the sample size where the sequential interval is tightest
            "sequential_tuning": _POSITIVE, "correction": [Options(*CORRECTIONS)],
        }, error=ExperimentError)
        for key in ("alpha", "power", "mde", "min_duration_days", "sequential_tuning"):
            setattr(self, key, float(getattr(self, key)))

    def _check_variants(self) -> None:
        _check("variants", self.variants, [list, tuple])
        self.variants = [_coerce(Variant, v, f"variants[{i}]") for i, v in enumerate(self.variants)]
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ExperimentError(f"variant names must be unique; {dupes} appear more than once",
                                  key="variants", fix="rename the duplicates")
        served = self.served_variants
        if len(served) < 2:
            raise ExperimentError(
                f"an experiment needs at least 2 non-shadow variants; got {len(served)} "
                f"({[v.name for v in served]})", key="variants",
                fix="add a control and a treatment with shadow: false")
        total = sum(v.weight for v in served)
        if abs(total - 1.0) > _WEIGHT_TOL:
            raise ExperimentError(
                f"the weights of non-shadow variants must sum to 1; got {total!r} "
                f"({ {v.name: v.weight for v in served} })", key="variants",
                fix="rescale the weights so they sum to 1")
        if self.control is None:
            if self.variants[0].shadow:
                raise ExperimentError(
                    f"the control defaults to the first variant, but {self.variants[0].name!r} "
                    "is a shadow variant", key="control",
                    fix="put the control first or name it with control: <variant>")
            self.control = self.variants[0].name
        elif self.control not in names:
            _check("control", self.control, [Options(*names)])
        elif self.variant(self.control).shadow:
            raise _fail("control", "a non-shadow variant", self.control,
                        fix="a shadow variant gets no traffic and cannot be the control")

    def _check_metrics(self) -> None:
        self.primary_metric = _coerce(Metric, self.primary_metric, "primary_metric")
        self.secondary_metrics = [_coerce(Metric, m, f"secondary_metrics[{i}]")
                                  for i, m in enumerate(self.secondary_metrics or [])]
        self.guardrails = [_coerce(Guardrail, g, f"guardrails[{i}]")
                           for i, g in enumerate(self.guardrails or [])]
        names = [self.primary_metric.name] + [m.name for m in self.secondary_metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ExperimentError(
                f"metric names must be unique across primary_metric and secondary_metrics; "
                f"{dupes} repeat", key="secondary_metrics", fix="list each metric once")
        guard = [g.name for g in self.guardrails]
        if len(set(guard)) != len(guard):
            raise ExperimentError(f"guardrail names must be unique; got {guard}", key="guardrails")
        if self.primary_metric.name in guard:
            raise ExperimentError(
                f"the primary metric {self.primary_metric.name!r} cannot also be a guardrail",
                key="guardrails", fix="remove it from guardrails")

    # -- views ----------------------------------------------------------------------------
    @property
    def served_variants(self) -> list[Variant]:
        """Variants that take traffic, in declaration order (the order of bucket ranges)."""
        return [v for v in self.variants if not v.shadow]

    @property
    def shadow_variants(self) -> list[Variant]:
        return [v for v in self.variants if v.shadow]

    @property
    def treatments(self) -> list[str]:
        """Served variants other than the control."""
        return [v.name for v in self.served_variants if v.name != self.control]

    @property
    def weights(self) -> dict[str, float]:
        """Traffic share of each served variant, in range order."""
        return {v.name: v.weight for v in self.served_variants}

    @property
    def metric_names(self) -> list[str]:
        """Primary, secondary and guardrail metric names (each once)."""
        names = [self.primary_metric.name] + [m.name for m in self.secondary_metrics]
        return names + [g.name for g in self.guardrails if g.name not in names]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ExperimentError(f"unknown variant {name!r}; variants are {[v.name for v in self.variants]}",
                              key="variant")

    # -- assignment state -----------------------------------------------------------------
    def assignment_state(self) -> dict[str, Any]:
        """What decides who gets which variant: the seed and the ordered weights."""
        return {"seed": self.seed, "weights": [[v.name, v.weight] for v in self.served_variants]}

    def fingerprint(self) -> str:
        """Stable sha256 of (seed, ordered weights): equal across processes and machines."""
        return fingerprint(self.assignment_state())


def fingerprint(state: dict[str, Any]) -> str:
    """sha256 hex of an assignment state ``{"seed": str, "weights": [[name, w], ...]}``."""
    weights = _weights_list(state.get("weights"))
    canonical = json.dumps({"seed": state.get("seed"), "weights": weights},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _weights_list(weights: Any) -> list[list[Any]]:
    if isinstance(weights, dict):
        return [[str(k), float(v)] for k, v in weights.items()]
    if isinstance(weights, (list, tuple)):
        return [[str(k), float(v)] for k, v in weights]
    raise _fail("previous.weights", "a dict {variant: weight} or a list of [variant, weight]", weights)


def check_weights_unchanged(previous: dict[str, Any] | None, spec: ExperimentSpec) -> None:
    """Refuse a weight change that keeps the seed: it would move units between variants.

    ``previous`` is the assignment state saved when the experiment started
    (``spec.assignment_state()``); ``None`` means the experiment is new. Changing the seed
    re-randomises everyone, so a new seed with new weights is allowed.
    """
    if previous is None:
        return
    if not isinstance(previous, dict) or "seed" not in previous or "weights" not in previous:
        raise _fail("previous", "a dict with 'seed' and 'weights' (spec.assignment_state())", previous)
    if previous["seed"] != spec.seed:
        return
    before = _weights_list(previous["weights"])
    after = _weights_list(spec.assignment_state()["weights"])
    same = len(before) == len(after) and all(
        b[0] == a[0] and math.isclose(b[1], a[1], rel_tol=0.0, abs_tol=1e-12)
        for b, a in zip(before, after))
    if not same:
        raise ExperimentError(
            f"the variants or weights changed from {dict(before)} to {dict(after)} while the seed "
            f"stayed {spec.seed!r}; units already exposed would switch variants and bias the "
            "results", key=f"experiment[{spec.key}].variants",
            fix="change the seed to re-randomise (and restart the analysis), or restore the "
                "previous weights")
