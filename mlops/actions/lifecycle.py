"""``action=lifecycle`` (the default): the whole story, as configuration over the other actions.

Each step of ``conf/lifecycle/*.yaml`` is composed like a command line
(``python run.py action=<a> <overrides>``), runs in its own folder of the run
directory, and writes its own JSON + HTML. ``index.html`` then tells the story
as a timeline with links; ``lifecycle.json`` lists the steps and the events a
reader should see (drift detected, breaker tripped, v2 staged, ...).
"""
from __future__ import annotations

import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult
from mlops.errors import ConfigError
from mlops.package_files import BUILTIN_CONF
from mlops.reports.index import write_index
from mlops.reports.render import write_json
from mlops.reports.story import step_events, story_line, summary


def _compose(overrides: list[str]):
    if GlobalHydra.instance().is_initialized():  # inside run.py's @hydra.main
        return compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=str(BUILTIN_CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _user_overrides(ctx: RunContext) -> list[str]:
    """The user's own command-line overrides, minus what the lifecycle decides per step."""
    skip = ("action=", "lifecycle", "hydra.", "paths.")
    return [o for o in ctx.overrides if not o.lstrip("+~").startswith(skip)]


def run(ctx: RunContext) -> ActionResult:
    """Run every step of ``lifecycle.steps``; write lifecycle.json and the index page."""
    lc = ctx.cfg.lifecycle
    if not lc.steps:
        raise ConfigError("the lifecycle has no steps", key="lifecycle.steps",
                          fix="list steps in conf/lifecycle/default.yaml")
    if ctx.run_step is None:
        raise ConfigError("the lifecycle runs its steps through the dispatcher", key="action",
                          fix="run it as `python run.py action=lifecycle`")
    home = Path(lc.home).resolve() if lc.home else ctx.output_dir / "home"
    t0 = time.perf_counter()
    done, story, entries, ok = [], [], [], True
    events = {c.event: None for step in lc.steps for c in step.events}
    for i, step in enumerate(lc.steps, start=1):
        entry, res = _run_step(ctx, i, step, home)
        events.update(step_events(step.events, res.result if res is not None else None))
        done.append(entry)
        entries.append({**entry, "title": f"{i}. {step.name}"})
        story.append(story_line(i, step, entry))
        ok &= entry["expected"]
        if not entry["expected"]:
            break
    missing = [k for k, v in events.items() if v in (None, False)]
    status = "ok" if ok and not missing else "fail"
    headline = ("The story ran end to end: " + summary(lc.steps, events)) if status == "ok" else \
        f"The lifecycle stopped or missed events: {', '.join(missing) or done[-1]['step']}"
    result = {"action": "lifecycle", "status": status, "headline": headline, "steps": done,
              "events": events, "home": str(home),
              "duration_s": round(time.perf_counter() - t0, 2)}
    write_json(result, ctx.output_dir / "lifecycle.json")
    index = write_index(ctx.output_dir, entries, title=lc.title,
                        story=story, verdict=(status, headline, [e["headline"] for e in done
                                                                 if not e["expected"]]))
    print(f"index: {index}")
    return ActionResult(result=result, exit_code=0 if status == "ok" else 1,
                        report="index.html")


def _run_step(ctx: RunContext, i: int, step, home: Path) -> tuple[dict, ActionResult | None]:
    """Compose one step like a command line, run it in its own folder; (entry, result)."""
    if step.action == "lifecycle":
        raise ConfigError("a lifecycle step cannot run the lifecycle",
                          key=f"lifecycle.steps[{i - 1}].action")
    folder = f"{i:02d}_{step.name}"
    step_dir = ctx.output_dir / folder
    cfg = _compose([*ctx.cfg.lifecycle.overrides, *_user_overrides(ctx), *step.overrides,
                    f"action={step.action}", f"paths.home={home}",
                    f"paths.output_dir={step_dir}"])
    started = time.perf_counter()
    print(f"[{i}/{len(ctx.cfg.lifecycle.steps)}] {step.name}: action={step.action}", flush=True)
    code, res = ctx.run_step(cfg)
    data = res.result if res is not None else {}
    report = (res.report if res is not None else None) or f"{step.action}.html"
    return {"step": step.name, "action": step.action, "exit_code": code,
            "expected": code in step.expect_exit,
            "status": data.get("status", "ok" if code == 0 else "fail"),
            "headline": data.get("headline") or "",
            "href": f"{folder}/{report}", "json_href": f"{folder}/{Path(report).stem}.json",
            "seconds": round(time.perf_counter() - started, 2)}, res
