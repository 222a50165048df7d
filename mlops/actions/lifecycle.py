"""``action=lifecycle`` (the default): the whole story, as configuration over the other actions.

Each step of ``conf/lifecycle/*.yaml`` is composed like a command line
(``python run.py action=<a> <overrides>``), runs in its own folder of the run
directory, and writes its own JSON + HTML. ``index.html`` then tells the story
as a timeline with links; ``lifecycle.json`` lists the steps and the events a
reader should see (drift detected, breaker tripped, v2 staged, ...): the story is
:class:`mlops.reports.story.Story`.
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
from mlops.reports.story import Story, step_entry


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
    t0, story = time.perf_counter(), Story(lc.steps)
    for i, step in enumerate(lc.steps, start=1):
        entry, res = _run_step(ctx, i, step, home)
        if not story.record(i, step, entry, res.result if res is not None else None):
            break
    result, index = story.write(ctx.output_dir, title=lc.title, home=home,
                                seconds=time.perf_counter() - t0)
    print(f"index: {index}")
    return ActionResult(result=result, exit_code=0 if result["status"] == "ok" else 1,
                        report="index.html")


def _run_step(ctx: RunContext, i: int, step, home: Path) -> tuple[dict, ActionResult | None]:
    """Compose one step like a command line, run it in its own folder; (entry, result)."""
    if step.action == "lifecycle":
        raise ConfigError("a lifecycle step cannot run the lifecycle",
                          key=f"lifecycle.steps[{i - 1}].action")
    folder = f"{i:02d}_{step.name}"
    cfg = _compose([*ctx.cfg.lifecycle.overrides, *_user_overrides(ctx), *step.overrides,
                    f"action={step.action}", f"paths.home={home}",
                    f"paths.output_dir={ctx.output_dir / folder}"])
    started = time.perf_counter()
    print(f"[{i}/{len(ctx.cfg.lifecycle.steps)}] {step.name}: action={step.action}", flush=True)
    code, res = ctx.run_step(cfg)
    return step_entry(step, folder, code, res.result if res is not None else None,
                      res.report if res is not None else None,
                      time.perf_counter() - started), res
