"""Transitional (remove with ``serving_support``): the serving actions' support module,
which the serving branch moves into ``mlops/serving``, still imports these names. The
decision a run uses is :meth:`~mlops.actions.context.RunContext.decision`."""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.registry.policy import DecisionPolicy
from mlops.serving.skew import ModelInfo

SERVING_KEY = "serving.threshold"


def serving_decision(ctx: RunContext, mv) -> DecisionPolicy:
    """The served version's decision (``serving.threshold`` overrides it)."""
    return ctx.decision(mv, ctx.cfg.serving.threshold, key=SERVING_KEY)


def model_info(mv, decision: DecisionPolicy, **extra) -> ModelInfo:
    """The server's :class:`ModelInfo` of version ``mv`` deciding at ``decision``."""
    return ModelInfo(mv.name, str(mv.version), str(mv.feature_plan_hash),
                     extra={**extra, "decision": decision.as_dict()},
                     threshold=decision.threshold)
