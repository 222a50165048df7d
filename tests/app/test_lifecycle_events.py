"""The lifecycle reads its steps' results in memory and checks the events its YAML declares."""
from __future__ import annotations

import json

import pytest
from support import compose_cfg

from mlops.actions import lifecycle
from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult
from mlops.reports import story

RESULT = {"status": "ok", "decision": "ship", "performance": {"concept_drift": True},
          "actions": [{"action": "alert"}, {"action": "retrain", "staged": True, "version": 2}],
          "details": {"to": 1}}


@pytest.mark.parametrize("path,value", [
    ("status", "ok"), ("performance.concept_drift", True), ("details.to", 1),
    ("actions[action=retrain].staged", True), ("actions[action=retrain].version", 2),
    ("actions[action=alert].staged", None),       # the picked item has no such field
    ("actions[action=rollback].staged", None),    # no item matches
    ("performance.missing.deeper", None), ("decision.deeper", None), ("nothing", None),
])
def test_field_value_walks_dicts_and_picks_list_items(path, value):
    assert story.field_value(RESULT, path) == value


class _Check:
    def __init__(self, event, field, equals=None, says=""):
        self.event, self.field, self.equals, self.says = event, field, equals, says


def test_step_events_compare_with_equals_or_keep_the_value():
    checks = [_Check("a", "status", "ok"), _Check("b", "details.to", 2),
              _Check("c", "decision"), _Check("d", "performance.concept_drift", False)]
    assert story.step_events(checks, RESULT) == {"a": True, "b": False, "c": "ship",
                                                     "d": False}
    assert story.step_events(checks, None) == dict.fromkeys("abcd")


STEPS = ("lifecycle.steps=["
         "{name: one, action: features, events: [{event: quiet, field: drift, equals: false,"
         " says: all quiet}]},"
         "{name: two, action: analyze, expect_exit: [3], events: [{event: decision,"
         " field: decision, says: 'A/B: {value}'}]},"
         "{name: three, action: rollback, events: [{event: rolled_back, field: details.to,"
         " equals: 1}]}]")


def _lifecycle(tmp_path, results):
    cfg = compose_cfg(["action=lifecycle", STEPS, "lifecycle.overrides=[]"], tmp_path)
    ctx = RunContext.from_config(cfg)
    ran = []

    def fake_step(step_cfg):  # the dispatcher's step runner, injected on the context
        ran.append(str(step_cfg.action))
        code, result = results[len(ran) - 1]
        return code, ActionResult(result=result, exit_code=code)
    ctx.run_step = fake_step
    res = lifecycle.run(ctx)
    return res, ran, json.loads((ctx.output_dir / "lifecycle.json").read_text())


def test_declared_events_come_from_each_steps_result(tmp_path):
    res, ran, saved = _lifecycle(tmp_path, [
        (0, {"status": "ok", "headline": "h1", "drift": False}),
        (3, {"status": "warn", "headline": "h2", "decision": "keep_running"}),
        (0, {"status": "ok", "headline": "h3", "details": {"from": 2, "to": 1}})])
    assert ran == ["features", "analyze", "rollback"] and res.exit_code == 0
    assert saved["events"] == {"quiet": True, "decision": "keep_running", "rolled_back": True}
    assert saved["headline"] == "The story ran end to end: all quiet, A/B: keep running"
    assert [s["expected"] for s in saved["steps"]] == [True, True, True]
    assert saved["steps"][1]["href"] == "02_two/analyze.html"


def test_an_unexpected_exit_stops_the_story_and_leaves_later_events_missing(tmp_path):
    res, ran, saved = _lifecycle(tmp_path, [
        (0, {"status": "ok", "headline": "h1", "drift": True}),
        (0, {"status": "ok", "headline": "h2", "decision": "ship"})])  # expected exit 3
    assert ran == ["features", "analyze"] and res.exit_code == 1
    assert saved["events"] == {"quiet": False, "decision": "ship", "rolled_back": None}
    assert saved["status"] == "fail" and "quiet, rolled_back" in saved["headline"]
    assert saved["steps"][-1]["expected"] is False
