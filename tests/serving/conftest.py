"""Fixtures of the serving tests: a built world, states, a real redis-server."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # serving_world (importlib mode)

from serving_world import build_world  # noqa: E402
from support import redis_server  # noqa: E402

from mlops.features.online import SQLiteStore  # noqa: E402
from mlops.serving.settings import ServingSettings  # noqa: E402
from mlops.serving.skew import ModelInfo  # noqa: E402
from mlops.serving.state import ServingState  # noqa: E402


@pytest.fixture(scope="session")
def world():
    return build_world()


@pytest.fixture(scope="session")
def world_v2():
    """Same plan, another model (different regularization): a second registry version."""
    return build_world(version="2", C=0.01)


@pytest.fixture
def make_state(world, tmp_path):
    """Factory: a ServingState on a fresh SQLite file store, settings overridable."""
    made = []

    def make(*, breaker=None, fallback=None, reload_fn=None, clock=None, log=False,
             store=None, event_id=None, audit=None, gate_check=None, plan=None, **overrides):
        from mlops.serving.prediction_log import PredictionLog
        settings = ServingSettings(**overrides)
        if breaker is not None:
            settings.breaker = breaker.settings
        plog = PredictionLog(tmp_path / "plog", world.plan, flush_records=10_000,
                             flush_seconds=60) if log else None
        info = world.info if plan is None else ModelInfo("fraud", "1", plan.spec_hash)
        state = ServingState(plan=plan or world.plan, model=world.model, info=info,
                             store=store or SQLiteStore(tmp_path / f"store{len(made)}.sqlite"),
                             settings=settings, breaker=breaker, prediction_log=plog,
                             fallback=fallback, reload_fn=reload_fn,
                             source_schema=world.events.schema,
                             event_id=event_id, audit=audit, gate_check=gate_check,
                             **({"clock": clock} if clock else {}))
        made.append(state)
        return state

    yield make
    for s in made:
        if s.prediction_log is not None:
            s.prediction_log.close()


@pytest.fixture(scope="session")
def redis_url():
    """A private redis-server on a free 127.0.0.1 port, stopped after the session."""
    with redis_server() as url:
        yield url
