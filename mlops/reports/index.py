"""The index page of a run directory: links every report, worst status first in the banner,
and optionally tells the run as a story (a vertical timeline of what happened and why).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlops.reports.display import normalize_status
from mlops.reports.render import render_report

_SEVERITY = {"fail": 3, "warn": 2, "ok": 1, "info": 0}
_SCHEME = re.compile(r"^\s*[a-zA-Z][a-zA-Z0-9+.\-]*:|^\s*//|\\")
REQUIRED_KEYS = ("action", "status", "headline")


def safe_href(href: Any) -> str | None:
    """``href`` if it is a plain relative link, else ``None`` (no ``javascript:``, no other hosts)."""
    if not href or not isinstance(href, str) or _SCHEME.search(href):
        return None
    return href


def _entry(e: Mapping[str, Any]) -> dict:
    step = str(e.get("step") or e.get("action") or e.get("title") or "")
    return {
        "step": step,
        "title": str(e.get("title") or step),
        "status": normalize_status(e.get("status")),
        "headline": str(e.get("headline") or ""),
        "href": safe_href(e.get("href")),
        "json_href": safe_href(e.get("json_href")),
        "at": e.get("at"),
    }


def _story_item(s: Mapping[str, Any]) -> dict:
    item = _entry(s)
    item["text"] = str(s.get("text") or s.get("explanation") or s.get("headline") or "")
    return item


def overall_status(entries: Sequence[Mapping[str, Any]]) -> str:
    """The worst status among ``entries`` (fail > warn > ok); ``info`` when there are none."""
    return max((normalize_status(e.get("status")) for e in entries), key=_SEVERITY.__getitem__,
               default="info")


def write_index(run_dir: Path, entries: Sequence[Mapping[str, Any]], *, title: str,
                story: Sequence[Mapping[str, Any]] | None = None,
                verdict: tuple[str, str, Sequence[str]] | None = None,
                templates_dir: Path | None = None, run: Mapping[str, Any] | None = None) -> Path:
    """Write ``run_dir/index.html`` linking every report; return its path.

    ``entries``: ``{step, title, status (ok/warn/fail), headline, href, json_href}`` with
    relative hrefs (other links are dropped). ``story``: optional ordered steps
    ``{step, status, text, href?}``, ``text`` being one line on what happened and why.

    >>> write_index(run_dir, collect_entries(run_dir), title="Lifecycle run",
    ...             story=[{"step": "train", "status": "ok", "text": "AUC 0.91 on the last 30 days"}])  # doctest: +SKIP
    """
    rows = [_entry(e) for e in entries]
    steps = [_story_item(s) for s in story or []]
    status = overall_status(rows)
    counts = Counter(r["status"] for r in rows)
    worst = [r for r in rows if r["status"] == status]
    if not rows:
        headline = "No reports in this run directory yet"
    elif status == "fail":
        headline = f"{worst[0]['title']} failed: {worst[0]['headline']}"
    elif status == "warn":
        headline = f"{worst[0]['title']} needs attention: {worst[0]['headline']}"
    else:
        headline = f"All {len(rows)} reports are ok"
    # the banner names the first worst report; every other report that is not ok is listed below it
    reasons = [f"{r['title']}: {r['headline']}" for r in rows
               if r["status"] in ("fail", "warn") and r is not worst[0]]
    cards = [{"label": "reports", "value": len(rows)},
             {"label": "ok", "value": counts["ok"], "status": "ok" if counts["ok"] else None},
             {"label": "warnings", "value": counts["warn"], "status": "warn" if counts["warn"] else None},
             {"label": "failed", "value": counts["fail"], "status": "fail" if counts["fail"] else None}]
    if verdict is not None:  # the caller knows better (e.g. drift was the expected outcome)
        status, headline, reasons = verdict[0], verdict[1], list(verdict[2])
    context = {"entries": rows, "story": steps, "status": status, "headline": headline,
               "reasons": reasons, "cards": cards}
    if run:
        context["run"] = dict(run)
    return render_report("index.html", context, Path(run_dir) / "index.html", title=title,
                         templates_dir=templates_dir, index_href=None)


def collect_entries(run_dir: Path) -> list[dict]:
    """Index entries for every action report (``*.json`` with top-level ``action``,
    ``status`` and ``headline``) in ``run_dir``, oldest first; other JSON files are ignored.
    """
    found = []
    for path in Path(run_dir).glob("*.json"):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or any(k not in data for k in REQUIRED_KEYS):
            continue
        html = path.with_suffix(".html")
        mtime = path.stat().st_mtime
        found.append((mtime, path.name, {
            "step": data.get("step") or data["action"],
            "title": data.get("title") or str(data["action"]).replace("_", " ").capitalize(),
            "status": data["status"],
            "headline": data["headline"],
            "href": html.name if html.exists() else None,
            "json_href": path.name,
            "at": dt.datetime.fromtimestamp(mtime, dt.timezone.utc),
        }))
    return [e for _, _, e in sorted(found, key=lambda t: (t[0], t[1]))]
