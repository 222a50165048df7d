"""The decision threshold a run uses: the one its model version carries (its policy), or
an explicit override on the command line, which wins with a warning and is recorded in
the run's result (a support module, not an action).

Overrides (null by default): ``serving.threshold`` (serve, replay, score) and
``experiment.simulation.threshold`` (analyze with simulated traffic). Monitoring decides at
the monitored version's own threshold (``actions/monitor.py``), with no override.
"""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.registry.policy import DecisionPolicy, decision_policy
from mlops.serving.skew import ModelInfo

SERVING_KEY = "serving.threshold"
SIMULATION_KEY = "experiment.simulation.threshold"


def version_decision(mv, override: float | None, *, key: str) -> DecisionPolicy:
    """The decision policy of version ``mv``, with ``override`` (from ``key``) applied.

    Prints a warning when an override replaces the version's threshold, and a note when
    an old version (registered before policies) falls back.
    """
    policy = decision_policy(mv).overridden_by(override, key=key)
    if policy.source == "override":
        print(f"warning: {mv.name} v{mv.version}: {policy.note}")
    elif policy.source == "legacy" and policy.is_classifier:
        print(f"note: {mv.name} v{mv.version} {policy.note}")
    return policy


def serving_decision(ctx: RunContext, mv) -> DecisionPolicy:
    """The served version's decision (``serving.threshold`` overrides it)."""
    return version_decision(mv, ctx.cfg.serving.threshold, key=SERVING_KEY)


def model_info(mv, decision: DecisionPolicy, **extra) -> ModelInfo:
    """The server's :class:`ModelInfo` of version ``mv`` deciding at ``decision``."""
    return ModelInfo(mv.name, str(mv.version), str(mv.feature_plan_hash),
                     extra={**extra, "decision": decision.as_dict()},
                     threshold=decision.threshold)
