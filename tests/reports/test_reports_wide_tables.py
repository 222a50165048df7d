"""Wide tables scroll inside their box, never the page (issue 22): a real browser at 1300 px
lays out a report whose tables are far wider than the page, in the page, inside a two-column
grid and inside a details element; the page itself never scrolls sideways."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from mlops.reports.render import TEMPLATES_DIR, render_string

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")

WIDE = """{% extends "base.html" %}{% block content %}
{{ m.table(rows, cols) }}
<div class="grid2"><div>{{ m.table(rows, cols) }}</div>
<figure class="chart"><svg width="1900" height="40"><rect width="1900" height="40"/></svg></figure></div>
{% call m.details("all of them") %}{{ m.table(rows, cols) }}{% endcall %}
{{ m.kv({"path": path}) }}
{% endblock %}"""
MEASURE = """<script>document.addEventListener('DOMContentLoaded', () => {
const doc = document.documentElement, wraps = [...document.querySelectorAll('.table-wrap')];
doc.setAttribute('data-page', doc.scrollWidth + '/' + doc.clientWidth);
doc.setAttribute('data-wraps', wraps.map(w => w.scrollWidth + '/' + w.clientWidth).join(' '));
});</script>"""


def test_wide_tables_scroll_inside_their_box_at_1300px(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    (templates / "wide.html").write_text(WIDE)
    cols = [f"a_long_feature_name_{i:02d}_that_does_not_break" for i in range(40)]
    rows = [{c: f"value_{i}_{c}" for c in cols} for i in range(5)]
    html = render_string("wide.html", {"rows": rows, "cols": cols, "path": "/x" * 400},
                         title="wide", templates_dir=templates)
    page = tmp_path / "wide.html"
    page.write_text(html.replace("</head>", MEASURE + "</head>", 1))
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,900",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    scroll, client = map(int, re.search(r'data-page="(\d+)/(\d+)"', dom.stdout).groups())
    assert scroll <= client, f"the page scrolls sideways: {scroll} > {client}"
    wraps = [tuple(map(int, w.split("/"))) for w in
             re.search(r'data-wraps="([^"]*)"', dom.stdout).group(1).split()]
    tables = wraps[:3]   # the kv table wraps its long value instead
    assert len(wraps) == 4 and all(s > c for s, c in tables), wraps
    assert all(c <= client for _, c in wraps)
