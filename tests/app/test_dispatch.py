"""One dispatch table: every action resolves to one entry point taking only the run context,
unknown actions are a config error with a did-you-mean, and the step runner records results."""
from __future__ import annotations

import inspect
import json

import pytest
from support import compose_cfg

from mlops.actions import dispatch
from mlops.actions.outputs import ActionResult
from mlops.errors import ConfigError


@pytest.mark.parametrize("action", sorted(dispatch.ACTIONS))
def test_every_action_has_one_entry_point_taking_the_context(action):
    fn = dispatch.entry_point(action)
    assert callable(fn) and list(inspect.signature(fn).parameters) == ["ctx"]


def test_unknown_action_names_the_key_and_the_closest_action():
    with pytest.raises(ConfigError) as err:
        dispatch.check_action("trian")
    assert err.value.key == "action" and "Did you mean 'train'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        dispatch.check_action("zzzz")
    assert "Did you mean" not in str(err.value)


def test_run_step_records_a_user_error_as_a_failed_result(tmp_path):
    cfg = compose_cfg(["action=promote"], tmp_path)  # no registry.version: a config error
    code, res = dispatch.run_step(cfg)
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert code == 2 and res.exit_code == 2 and res.result["status"] == "fail"
    assert "registry.version" in res.result["headline"] == record["error"]
    assert record["status"] == "failed" and record["action"] == "promote"


def test_run_step_hands_the_context_the_action_and_a_step_runner(tmp_path, monkeypatch):
    seen = {}

    def fake(ctx):
        seen.update(action=ctx.action, runner=ctx.run_step)
        return ActionResult(result={"status": "ok", "headline": "h"}, objective={"value": 0.5},
                            exit_code=0)
    monkeypatch.setitem(dispatch.ACTIONS, "plan", "dispatch:_fake")
    monkeypatch.setattr(dispatch, "_fake", fake, raising=False)
    from mlops.app import execute
    code, objective = execute(compose_cfg(["action=plan"], tmp_path))
    assert (code, objective, seen["action"]) == (0, 0.5, "plan")
    assert seen["runner"].func is dispatch.run_step
