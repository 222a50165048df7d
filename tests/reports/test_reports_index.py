"""Index page: links, escaping, story timeline, rebuilding entries from disk."""
from __future__ import annotations

import json
import os

from mlops.reports.index import collect_entries, overall_status, safe_href, write_index


def test_index_escapes_entries_and_links_reports(tmp_path, xss, parse):
    entries = [
        {"step": "features", "title": "Features", "status": "ok", "headline": "14 features compiled",
         "href": "features.html", "json_href": "features.json"},
        {"step": xss, "title": xss, "status": "failed", "headline": xss, "href": "javascript:alert(1)",
         "json_href": "//evil.example/x.json"},
    ]
    story = [{"step": "train", "status": "ok", "text": "AUC 0.91 on the last 30 days", "href": "train.html"},
             {"step": "promote", "status": "fail", "text": xss}]
    out = write_index(tmp_path, entries, title="Lifecycle", story=story)
    html = out.read_text()
    doc = parse(html)
    assert xss not in html and "script" not in doc.tags
    assert any(xss in t for t in doc.text)
    assert '<a href="features.html">Features</a>' in html and '<a href="features.json">JSON</a>' in html
    assert "javascript:" not in html and "evil.example" not in html
    # worst status wins the banner, and the failing step is named in the headline
    assert "verdict-fail" in html and "failed: " in html
    assert 'class="tl-ok"' in html and 'class="tl-fail"' in html and '<a href="train.html">train</a>' in html
    assert "index.html" not in html  # the index does not link to itself


def test_collect_entries_reads_action_json_in_write_order(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps({"action": "train", "status": "ok", "headline": "AUC 0.91"}))
    (tmp_path / "train.html").write_text("<html></html>")
    (tmp_path / "monitor.json").write_text(json.dumps({"action": "monitor", "status": "warn",
                                                       "headline": "2 drifted", "title": "Drift monitor"}))
    (tmp_path / "metrics.json").write_text(json.dumps({"auc": 0.9}))            # not a report
    (tmp_path / "list.json").write_text("[1, 2]")                                 # not a report
    (tmp_path / "broken.json").write_text("{not json")                            # unreadable
    os.utime(tmp_path / "train.json", (1_700_000_000, 1_700_000_000))
    os.utime(tmp_path / "monitor.json", (1_700_000_100, 1_700_000_100))
    entries = collect_entries(tmp_path)
    assert [e["step"] for e in entries] == ["train", "monitor"]
    assert entries[0]["href"] == "train.html" and entries[1]["href"] is None
    assert entries[1]["title"] == "Drift monitor" and entries[0]["title"] == "Train"
    assert overall_status(entries) == "warn" and overall_status([]) == "info"
    html = write_index(tmp_path, entries, title="Run").read_text()
    assert "Drift monitor needs attention: 2 drifted" in html


def test_safe_href():
    assert safe_href("train.html") == "train.html" and safe_href("3/train.html") == "3/train.html"
    for bad in ("javascript:alert(1)", " JavaScript:x", "https://x.y", "//x.y", "a\\b", "", None, 3):
        assert safe_href(bad) is None
