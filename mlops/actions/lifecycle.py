"""``action=lifecycle`` (the default): the whole story, as configuration over the other actions.

Each step of ``conf/lifecycle/*.yaml`` is composed like a command line
(``python run.py action=<a> <overrides>``), runs in its own folder of the run
directory, and writes its own JSON + HTML. ``index.html`` then tells the story
as a timeline with links; ``lifecycle.json`` lists the steps and the events a
reader should see (drift detected, breaker tripped, v2 staged, ...).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult
from mlops.config.validate import plain
from mlops.errors import ConfigError
from mlops.reports.index import write_index
from mlops.reports.render import write_json

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _compose(overrides: list[str]):
    if GlobalHydra.instance().is_initialized():  # inside run.py's @hydra.main
        return compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _user_overrides(ctx: RunContext) -> list[str]:
    """The user's own command-line overrides, minus what the lifecycle decides per step."""
    skip = ("action=", "lifecycle", "hydra.", "paths.")
    return [o for o in ctx.overrides if not o.lstrip("+~").startswith(skip)]


def _read(step_dir: Path, name: str) -> dict:
    p = step_dir / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else {}


def run(ctx: RunContext) -> ActionResult:
    from mlops.app import execute
    lc = ctx.cfg.lifecycle
    steps = plain(lc.steps)
    if not steps:
        raise ConfigError("the lifecycle has no steps", key="lifecycle.steps",
                          fix="list steps in conf/lifecycle/default.yaml")
    home = Path(lc.home).resolve() if lc.home else ctx.output_dir / "home"
    base = [*plain(lc.overrides), *_user_overrides(ctx)]
    t0 = time.perf_counter()
    done, story, entries, ok = [], [], [], True
    for i, step in enumerate(steps, start=1):
        if step["action"] == "lifecycle":
            raise ConfigError("a lifecycle step cannot run the lifecycle",
                              key=f"lifecycle.steps[{i - 1}].action")
        folder = f"{i:02d}_{step['name']}"
        step_dir = ctx.output_dir / folder
        cfg = _compose([*base, *step.get("overrides", []), f"action={step['action']}",
                        f"paths.home={home}", f"paths.output_dir={step_dir}"])
        started = time.perf_counter()
        print(f"[{i}/{len(steps)}] {step['name']}: action={step['action']}", flush=True)
        code, _ = execute(cfg)
        record = _read(step_dir, "result")
        report = record.get("report") or f"{step['action']}.html"
        data = _read(step_dir, Path(report).stem)
        expected = code in step.get("expect_exit", [0])
        ok &= expected
        status = data.get("status", "ok" if code == 0 else "fail")
        entry = {"step": step["name"], "action": step["action"], "exit_code": code,
                 "expected": expected, "status": status,
                 "headline": data.get("headline") or record.get("error") or "",
                 "href": f"{folder}/{report}", "json_href": f"{folder}/{Path(report).stem}.json",
                 "seconds": round(time.perf_counter() - started, 2)}
        done.append(entry)
        entries.append({**entry, "title": f"{i}. {step['name']}"})
        story.append({"step": f"{i}. {step['name']}", "status": status if expected else "fail",
                      "text": f"{step.get('story', '')} → {entry['headline']}",
                      "href": entry["href"]})
        if not expected:
            story[-1]["text"] += f" (exit {code}, expected {step.get('expect_exit', [0])})"
            break
    events = _events(ctx.output_dir, done)
    missing = [k for k, v in events.items() if v in (None, False)]
    headline = ("The story ran end to end: " + _summary(events)) if ok and not missing else \
        f"The lifecycle stopped or missed events: {', '.join(missing) or done[-1]['step']}"
    status = "ok" if ok and not missing else "fail"
    result = {"action": "lifecycle", "status": status, "headline": headline, "steps": done,
              "events": events, "home": str(home),
              "duration_s": round(time.perf_counter() - t0, 2)}
    write_json(result, ctx.output_dir / "lifecycle.json")
    index = write_index(ctx.output_dir, entries, title=str(lc.title),
                        story=story, verdict=(status, headline, [e["headline"] for e in done
                                                                 if not e["expected"]]))
    print(f"index: {index}")
    return ActionResult(result=result, exit_code=0 if status == "ok" else 1,
                        report="index.html")


def _events(out: Path, done: list[dict]) -> dict:
    """What a reader should find in the reports, read back from the step JSON files."""
    by = {d["step"]: out / Path(d["href"]).parent for d in done}
    get = lambda step, name: _read(by[step], name) if step in by else {}  # noqa: E731
    stable, live = get("monitor_stable", "monitor"), get("monitor_live", "monitor")
    retrain = [a for a in live.get("actions", []) if a.get("action") == "retrain"]
    promote = get("promote_v2", "registry")
    rollback = get("rollback", "registry")
    return {
        "v1_in_production": bool(get("promote_v1", "registry")) and
        get("promote_v1", "registry").get("status") == "ok",
        "stable_period_no_drift": (not stable.get("dataset_drift")) if stable else None,
        "breaker_tripped": get("go_live", "replay").get("breaker_tripped"),
        "data_drift_detected": live.get("dataset_drift"),
        "concept_drift_detected": (live.get("performance") or {}).get("concept_drift"),
        "v2_staged": bool(retrain and retrain[0].get("staged")),
        "experiment_decision": get("ab_test", "analyze").get("decision"),
        "v2_promoted": promote.get("status") == "ok" and
        ((promote.get("registry") or {}).get("models") or [{}])[0].get("aliases", {})
        .get("production") == 2 if promote else None,
        "rollback_worked": (rollback.get("details") or {}).get("to") == 1 if rollback else None,
    }


def _summary(ev: dict) -> str:
    parts = ["v1 live", "stable period quiet" if ev["stable_period_no_drift"] else None,
             "breaker tripped" if ev["breaker_tripped"] else None,
             "data + concept drift detected" if ev["concept_drift_detected"] else None,
             "v2 staged" if ev["v2_staged"] else None,
             f"A/B: {str(ev['experiment_decision']).replace('_', ' ')}",
             "v2 promoted" if ev["v2_promoted"] else None,
             "rollback to v1 worked" if ev["rollback_worked"] else None]
    return ", ".join(p for p in parts if p)
