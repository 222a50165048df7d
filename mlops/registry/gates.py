"""Promotion gates: metric thresholds, fairness limits and required approvals.

Gates are plain dataclasses parsed from the dicts YAML gives us::

    >>> policy = GatePolicy.from_dict({"production": [
    ...     {"metric": "roc_auc", "min": 0.7},
    ...     {"metric": "roc_auc", "max_drop_vs_current": 0.005},
    ...     {"fairness": "demographic_parity_difference", "max": 0.1},
    ...     {"approvals": 1},
    ... ]})
    >>> [g.name for g in policy.for_alias("production")][0]
    'metric:roc_auc>=0.7'

:func:`evaluate_gates` is pure: it takes the candidate version, the version currently
behind the alias and the list of approvers, and says which gates pass and why.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union

from mlops.constraints import Check, Interval, check, validate
from mlops.errors import ConfigError

_ALIAS = re.compile(r"^[a-z0-9_-]{1,64}$")

# Metric names whose lower value is better, used when a relative gate does not say.
_LOWER_IS_BETTER_HINTS = ("loss", "error", "mse", "mae", "rmse", "brier", "ece", "deviance")


class _Version(Protocol):
    version: int
    who: str
    metrics: dict
    fairness: dict


@dataclass(frozen=True)
class MetricGate:
    """Candidate metric within ``[min, max]`` and/or not worse than the current version by more
    than ``max_drop_vs_current`` (direction from ``higher_is_better``)."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_drop_vs_current: float | None = None
    higher_is_better: bool = True

    @property
    def name(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">={self.min:g}")
        if self.max is not None:
            parts.append(f"<={self.max:g}")
        if self.max_drop_vs_current is not None:
            parts.append(f" worsens<={self.max_drop_vs_current:g} vs current")
        return f"metric:{self.metric}" + ",".join(parts)


@dataclass(frozen=True)
class FairnessGate:
    """``|fairness[name]| <= max`` from the version's fairness audit dict."""

    fairness: str
    max: float

    @property
    def name(self) -> str:
        return f"fairness:{self.fairness}<={self.max:g}"


@dataclass(frozen=True)
class ApprovalGate:
    """At least ``approvals`` distinct approvers other than the version's trainer."""

    approvals: int

    @property
    def name(self) -> str:
        return f"approvals>={self.approvals}"


Gate = Union[MetricGate, FairnessGate, ApprovalGate]


@dataclass(frozen=True)
class GateResult:
    """Outcome of one gate: its ``name``, whether it ``passed`` and a human ``detail``."""

    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


_KINDS = {
    "metric": (MetricGate, ("metric", "min", "max", "max_drop_vs_current", "max_rise_vs_current",
                            "higher_is_better")),
    "fairness": (FairnessGate, ("fairness", "max")),
    "approvals": (ApprovalGate, ("approvals",)),
}


# declared rules (mlops.constraints)
_FINITE = [Interval(float)]
_AT_LEAST_0 = [Interval(float, 0, None)]
_NAME = [Check(lambda v: isinstance(v, str) and bool(v), "a non-empty metric name")]


def parse_gate(spec: Gate | Mapping[str, Any], *, key: str = "gate") -> Gate:
    """Build one gate from a dict; a bad dict raises ConfigError naming ``key``.

    >>> parse_gate({"metric": "log_loss", "max": 0.5})
    MetricGate(metric='log_loss', min=None, max=0.5, max_drop_vs_current=None, higher_is_better=False)
    """
    if isinstance(spec, (MetricGate, FairnessGate, ApprovalGate)):
        return spec
    kind = _gate_kind(spec, key)
    if kind == "approvals":
        return ApprovalGate(approvals=check(f"{key}.approvals", spec["approvals"],
                                            [Interval(int, 1, None)]))
    name = check(f"{key}.{kind}", spec[kind], _NAME)
    if kind == "fairness":
        if "max" not in spec:
            raise ConfigError("a fairness gate needs 'max'", key=f"{key}.max", fix="add e.g. max: 0.1")
        return FairnessGate(fairness=name, max=float(check(f"{key}.max", spec["max"], _AT_LEAST_0)))
    return _metric_gate(name, _rise_as_drop(spec, key), key)


def _gate_kind(spec: Any, key: str) -> str:
    """'metric', 'fairness' or 'approvals': the one kind key ``spec`` holds, no unknown keys."""
    check(key, spec, [Check(lambda v: isinstance(v, Mapping),
                            "a mapping like {'metric': 'roc_auc', 'min': 0.7}")])
    kinds = [k for k in _KINDS if k in spec]
    if len(kinds) != 1:
        raise ConfigError(
            f"must have exactly one of the keys 'metric', 'fairness', 'approvals'; got keys {sorted(spec)}",
            key=key,
            fix="write e.g. {metric: roc_auc, min: 0.7}, {fairness: demographic_parity_difference, max: 0.1} "
            "or {approvals: 1}",
        )
    allowed = _KINDS[kinds[0]][1]
    for extra in sorted(set(spec) - set(allowed)):
        close = difflib.get_close_matches(str(extra), allowed, n=1)
        hint = f". Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"unknown key for a {kinds[0]} gate; allowed keys: {list(allowed)}{hint}", key=f"{key}.{extra}"
        )
    return kinds[0]


def _rise_as_drop(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``max_rise_vs_current`` (lower-is-better metrics: rmse, mae, log_loss; "worse" is a
    rise) as ``max_drop_vs_current`` with ``higher_is_better: false``."""
    if spec.get("max_rise_vs_current") is None:
        return spec
    if spec.get("max_drop_vs_current") is not None:
        raise ConfigError("give max_drop_vs_current or max_rise_vs_current, not both", key=key)
    if spec.get("higher_is_better") is True:
        raise ConfigError("max_rise_vs_current is for metrics where lower is better",
                          key=f"{key}.max_rise_vs_current", fix="use max_drop_vs_current")
    return {**{k: v for k, v in spec.items() if k != "max_rise_vs_current"},
            "max_drop_vs_current": spec["max_rise_vs_current"], "higher_is_better": False}


def _metric_gate(name: str, spec: Mapping[str, Any], key: str) -> MetricGate:
    bounds = {b: spec.get(b) for b in ("min", "max", "max_drop_vs_current")}
    if all(v is None for v in bounds.values()):
        raise ConfigError(
            "a metric gate needs at least one of 'min', 'max', 'max_drop_vs_current' or "
            "'max_rise_vs_current'",
            key=key,
            fix=f"add e.g. min: 0.7 to the gate on {name!r}",
        )
    rules = {"min": [*_FINITE, None], "max": [*_FINITE, None],
             "max_drop_vs_current": [*_AT_LEAST_0, None], "higher_is_better": [bool, None]}
    validate(spec, {k: r for k, r in rules.items() if k in spec}, prefix=key)
    lo, hi, drop = (None if v is None else float(v) for v in bounds.values())
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"min ({lo:g}) is greater than max ({hi:g})", key=key)
    hib = spec.get("higher_is_better")
    if hib is None:
        hib = not any(hint in name.lower() for hint in _LOWER_IS_BETTER_HINTS)
    return MetricGate(metric=name, min=lo, max=hi, max_drop_vs_current=drop, higher_is_better=hib)


@dataclass(frozen=True)
class GatePolicy:
    """Maps alias -> gates; an alias with no entry needs no gates."""

    gates: Mapping[str, tuple[Gate, ...]]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Sequence[Gate | Mapping[str, Any]]] | None, *, key: str = "gates"):
        """Parse ``{alias: [gate dict, ...]}``; errors name e.g. ``gates.production[1].min``."""
        if spec is None:
            return cls(gates={})
        if isinstance(spec, GatePolicy):
            return spec
        if not isinstance(spec, Mapping):
            raise ConfigError(f"must be a mapping of alias -> list of gates; got {spec!r} instead", key=key)
        parsed: dict[str, tuple[Gate, ...]] = {}
        for alias, gates in spec.items():
            if not isinstance(alias, str) or not _ALIAS.match(alias) or alias.isdigit():
                raise ConfigError(f"alias names must match [a-z0-9_-]+ (not all digits); got {alias!r} instead",
                                  key=f"{key}.{alias}")
            if isinstance(gates, (str, bytes, Mapping)) or not isinstance(gates, Sequence):
                raise ConfigError(f"must be a list of gates; got {gates!r} instead", key=f"{key}.{alias}")
            parsed[str(alias)] = tuple(
                parse_gate(g, key=f"{key}.{alias}[{i}]") for i, g in enumerate(gates)
            )
        return cls(gates=parsed)

    def for_alias(self, alias: str) -> tuple[Gate, ...]:
        """Gates that guard ``alias`` (empty when none are declared)."""
        return tuple(self.gates.get(alias, ()))

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """JSON-safe form for reports."""
        out: dict[str, list[dict[str, Any]]] = {}
        for alias, gates in self.gates.items():
            out[alias] = [{"name": g.name, **{k: v for k, v in vars(g).items() if v is not None}} for g in gates]
        return out


def _metric_value(source: Mapping[str, Any], key: str) -> float | None:
    value = source.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_metric(gate: MetricGate, candidate: _Version, current: _Version | None, alias: str) -> GateResult:
    value = _metric_value(candidate.metrics, gate.metric)
    if value is None or math.isnan(value):
        have = sorted(candidate.metrics)
        return GateResult(gate.name, False, f"version {candidate.version} has no numeric metric "
                          f"'{gate.metric}' (metrics: {have})")
    problems, notes = [], [f"{gate.metric}={value:.6g}"]
    if gate.min is not None and value < gate.min:
        problems.append(f"{value:.6g} < min {gate.min:g}")
    if gate.max is not None and value > gate.max:
        problems.append(f"{value:.6g} > max {gate.max:g}")
    if gate.max_drop_vs_current is not None:
        base = None if current is None else _metric_value(current.metrics, gate.metric)
        if current is None:
            notes.append(f"no version behind '{alias}' yet, relative check skipped")
        elif base is None or math.isnan(base):
            notes.append(f"current '{alias}' version {current.version} has no '{gate.metric}', "
                         "relative check skipped")
        else:
            # Positive = worse, whichever way the metric points.
            worse_by = base - value if gate.higher_is_better else value - base
            direction = "higher" if gate.higher_is_better else "lower"
            notes.append(f"vs '{alias}' v{current.version} ({base:.6g}, {direction} is better): "
                         f"worse by {worse_by:.6g}")
            if worse_by > gate.max_drop_vs_current + 1e-12:
                problems.append(f"worse than '{alias}' v{current.version} by {worse_by:.6g} > "
                                f"allowed {gate.max_drop_vs_current:g}")
    return GateResult(gate.name, not problems, "; ".join(problems or notes))


def _check_fairness(gate: FairnessGate, candidate: _Version) -> GateResult:
    raw = candidate.fairness.get(gate.fairness)
    if isinstance(raw, Mapping):  # one value per sensitive attribute: the worst decides
        values = [abs(float(v)) for v in raw.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        value = max(values) if values else None
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = abs(float(raw))
    else:
        value = None
    if value is None or math.isnan(value):
        return GateResult(gate.name, False, f"version {candidate.version} has no numeric fairness value "
                          f"'{gate.fairness}' (fairness keys: {sorted(candidate.fairness)})")
    if value > gate.max:
        return GateResult(gate.name, False, f"|{gate.fairness}|={value:.6g} > max {gate.max:g}")
    return GateResult(gate.name, True, f"|{gate.fairness}|={value:.6g} <= max {gate.max:g}")


def evaluate_gates(
    gates: Sequence[Gate],
    *,
    candidate: _Version,
    current: _Version | None,
    approvers: Sequence[str],
    alias: str,
) -> list[GateResult]:
    """Evaluate every gate for promoting ``candidate`` to ``alias``.

    ``current`` is the version the alias points at now (None if unset); ``approvers``
    lists who approved the candidate (the trainer, ``candidate.who``, never counts).
    """
    results = []
    for gate in gates:
        if isinstance(gate, MetricGate):
            results.append(_check_metric(gate, candidate, current, alias))
        elif isinstance(gate, FairnessGate):
            results.append(_check_fairness(gate, candidate))
        elif isinstance(gate, ApprovalGate):
            valid = sorted({a for a in approvers if a != candidate.who})
            detail = f"{len(valid)} of {gate.approvals} required approval(s)"
            detail += f" ({', '.join(valid)})" if valid else f"; approve with a user other than '{candidate.who}'"
            results.append(GateResult(gate.name, len(valid) >= gate.approvals, detail))
        else:
            raise TypeError(f"not a gate: {gate!r}")
    return results
