"""The lifecycle's story: the events each step declares, read from the step results, and
the lines the index page tells (``action=lifecycle``, ``conf/lifecycle/*.yaml``).

An event is a field of a step's result (its JSON report) and, optionally, the value it must
hold: ``{event: drift_detected, field: drift, equals: true, says: "drift detected"}``.
:class:`Story` gathers the steps as they run and writes ``lifecycle.json`` and the index page.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops.reports.index import write_index
from mlops.reports.jsonio import write_json

_PICK = re.compile(r"(\w+)\[(\w+)=([^\]]*)\]")  # list[key=value]


def field_value(result: dict, path: str) -> Any:
    """The value at a dotted ``path`` of a step's result, or None where it is absent.

    ``name[key=value]`` picks the first item of the list ``name`` whose ``key`` equals
    ``value`` (compared as text): ``actions[action=retrain].staged``.
    """
    value: Any = result
    for part in path.split("."):
        pick = _PICK.fullmatch(part)
        value = value.get(pick[1] if pick else part) if isinstance(value, dict) else None
        if pick and isinstance(value, list):
            value = next((item for item in value if isinstance(item, dict)
                          and str(item.get(pick[2])) == pick[3]), None)
        if value is None:
            return None
    return value


def step_events(checks, result: dict | None) -> dict:
    """Each declared event of one step: True/False against ``equals``, else the value
    itself; None when the step has no result (it did not run or failed)."""
    out = {}
    for check in checks:
        if result is None:
            out[str(check.event)] = None
            continue
        value = field_value(result, str(check.field))
        out[str(check.event)] = value if check.equals is None else value == check.equals
    return out


def story_line(i: int, step, entry: dict) -> dict:
    """The index page's line for step ``i``: what it shows, what it found, its link."""
    line = {"step": f"{i}. {step.name}",
            "status": entry["status"] if entry["expected"] else "fail",
            "text": f"{step.story} → {entry['headline']}", "href": entry["href"]}
    if not entry["expected"]:
        line["text"] += f" (exit {entry['exit_code']}, expected {list(step.expect_exit)})"
    return line


def summary(steps, events: dict) -> str:
    """The declared ``says`` words of every event that holds, in story order."""
    parts = []
    for step in steps:
        for check in step.events:
            value = events.get(str(check.event))
            if check.says and value not in (None, False):
                parts.append(str(check.says).format(value=str(value).replace("_", " ")))
    return ", ".join(parts)


def step_entry(step, folder: str, exit_code: int, result: dict | None, report: str | None,
               seconds: float) -> dict:
    """What lifecycle.json records of one step that ran in ``folder`` of the run directory:
    its exit code (and whether ``step.expect_exit`` holds it), status, headline, links."""
    data = result if result is not None else {}
    report = report or f"{step.action}.html"
    return {"step": step.name, "action": step.action, "exit_code": exit_code,
            "expected": exit_code in step.expect_exit,
            "status": data.get("status", "ok" if exit_code == 0 else "fail"),
            "headline": data.get("headline") or "",
            "href": f"{folder}/{report}", "json_href": f"{folder}/{Path(report).stem}.json",
            "seconds": round(seconds, 2)}


@dataclass
class Story:
    """The lifecycle's story as its steps run: each step's entry, its index line and the
    events it declares. The first step whose exit is unexpected ends the story.

    Example:
        >>> story = Story(steps)  # doctest: +SKIP
        >>> story.record(1, steps[0], step_entry(...), result)  # doctest: +SKIP
        >>> outcome = story.write(run_dir, title="Lifecycle", home=home, seconds=31.2)  # doctest: +SKIP
    """

    steps: Sequence
    done: list[dict] = field(default_factory=list)
    entries: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    ok: bool = True
    events: dict = field(init=False)

    def __post_init__(self):
        self.events = {c.event: None for step in self.steps for c in step.events}

    def record(self, i: int, step, entry: dict, result: dict | None) -> bool:
        """Record step ``i``; False when its exit was unexpected (the story stops there)."""
        self.events.update(step_events(step.events, result))
        self.done.append(entry)
        self.entries.append({**entry, "title": f"{i}. {step.name}"})
        self.lines.append(story_line(i, step, entry))
        self.ok &= entry["expected"]
        return entry["expected"]

    def outcome(self, home: Path, seconds: float) -> dict:
        """lifecycle.json: ``ok`` when every step exited as expected and every declared
        event holds; the headline says the events in story order, or what went missing."""
        missing = [k for k, v in self.events.items() if v in (None, False)]
        status = "ok" if self.ok and not missing else "fail"
        headline = ("The story ran end to end: " + summary(self.steps, self.events)) \
            if status == "ok" else \
            f"The lifecycle stopped or missed events: {', '.join(missing) or self.done[-1]['step']}"
        return {"action": "lifecycle", "status": status, "headline": headline, "steps": self.done,
                "events": self.events, "home": str(home), "duration_s": round(seconds, 2)}

    def write(self, run_dir: Path, *, title: str, home: Path, seconds: float) -> tuple[dict, Path]:
        """Write ``lifecycle.json`` and the index page telling the story; (result, index)."""
        result = self.outcome(home, seconds)
        write_json(result, run_dir / "lifecycle.json")
        unexpected = [e["headline"] for e in self.done if not e["expected"]]
        index = write_index(run_dir, self.entries, title=title, story=self.lines,
                            verdict=(result["status"], result["headline"], unexpected))
        return result, index
