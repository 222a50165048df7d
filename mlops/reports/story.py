"""The lifecycle's story: the events each step declares, read from the step results, and
the lines the index page tells (``action=lifecycle``, ``conf/lifecycle/*.yaml``).

An event is a field of a step's result (its JSON report) and, optionally, the value it must
hold: ``{event: drift_detected, field: drift, equals: true, says: "drift detected"}``.
"""
from __future__ import annotations

import re
from typing import Any

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
