"""Renderer: filters, JSON writing, escaping, strict undefined, write_report."""
from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlops.reports.display import duration, fmt, normalize_status, pct, ts
from mlops.reports.render import (
    TEMPLATES_DIR,
    ReportError,
    render_report,
    render_string,
    write_json,
    write_report,
)


@pytest.mark.parametrize("value, expected", [
    (1234567, "1,234,567"),
    (np.int64(-9876), "-9,876"),
    (0, "0"),
    (0.123456, "0.1235"),
    (2.0, "2"),
    (1234.5, "1,234"),          # 4 significant digits, thousands separator
    (123456.7, "123,500"),
    (-42.123456, "-42.12"),
    (0.00012345, "0.0001234"),
    (1.5e-7, "1.5e-07"),
    (np.float32(3.14159), "3.142"),
    (None, "—"),
    (float("nan"), "—"),
    (float("inf"), "∞"),
    (True, "yes"),
    (np.bool_(False), "no"),
    ("text", "text"),
])
def test_fmt_cases(value, expected):
    assert fmt(value) == expected


def test_pct_ts_duration_status():
    assert pct(0.1234) == "12.3%"
    assert pct(None) == "—" and pct(float("nan")) == "—"
    assert ts("2024-03-01T12:00:00Z") == "2024-03-01 12:00 UTC"
    assert ts(dt.datetime(2024, 3, 1, 13, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == "2024-03-01 12:00 UTC"
    assert ts(dt.datetime(2024, 3, 1, 12, 0)) == "2024-03-01 12:00 UTC"  # naive = UTC
    assert ts(1709294400) == "2024-03-01 12:00 UTC"
    assert ts(None) == "—" and ts("not a date") == "not a date"
    assert duration(0.5) == "0.50 s" and duration(245) == "4 min 05 s" and duration(7380) == "2 h 03 min"
    assert [normalize_status(s) for s in ("OK", "failed", "warning", "weird")] == ["ok", "fail", "warn", "info"]


def test_write_json_is_json_safe_and_atomic(tmp_path):
    obj = {"nan": float("nan"), "inf": -math.inf, "np_float": np.float64(0.5), "np_nan": np.float32("nan"),
           "arr": np.array([1.0, np.nan, 3.0]), "int": np.int32(7), "when": dt.datetime(2024, 3, 1, 12, 0),
           "path": Path("/x/y"), "nested": [{"v": float("nan")}], 3: "int key", "flag": np.bool_(True)}
    out = write_json(obj, tmp_path / "sub" / "r.json")
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)  # strict JSON parse
    assert data == {"nan": None, "inf": None, "np_float": 0.5, "np_nan": None, "arr": [1.0, None, 3.0],
                    "int": 7, "when": "2024-03-01T12:00:00", "path": "/x/y", "nested": [{"v": None}],
                    "3": "int key", "flag": True}
    assert [p.name for p in out.parent.iterdir()] == ["r.json"]  # no temp file left behind


def test_write_json_rejects_unknown_types(tmp_path):
    with pytest.raises(TypeError, match="cannot serialise.*object"):
        write_json({"x": object()}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_table_escapes_untrusted_values(tmp_path, xss, parse):
    src = ('{% extends "base.html" %}{% import "_macros.html" as m %}{% block content %}'
           '{{ m.table(rows, ["feature", "psi"], highlight=0) }}{{ m.kv({"label": xss}) }}'
           '{{ m.details(xss, xss) }}{{ m.badge(xss) }}{% endblock %}')
    tdir = _templates_with(tmp_path, {"t.html": src})
    out = render_report("t.html", {"rows": [{"feature": xss, "psi": 0.25}], "xss": xss,
                                    "status": "fail", "headline": xss, "reasons": [xss],
                                    "cards": [{"label": xss, "value": xss, "hint": xss}]},
                        tmp_path / "t_out.html", title=xss, templates_dir=tdir)
    html = out.read_text()
    assert xss not in html
    doc = parse(html)
    assert "script" not in doc.tags
    assert sum(xss in t for t in doc.text) >= 8  # shown as text in title, h1, verdict, cards, table, kv, details, badge


def test_strict_undefined_and_missing_template(tmp_path):
    tdir = _templates_with(tmp_path, {"t.html": "{{ nope }}"})
    with pytest.raises(ReportError, match="'nope' is undefined"):
        render_string("t.html", {}, title="x", templates_dir=tdir)
    with pytest.raises(ReportError, match="does not exist"):
        render_string("absent.html", {}, title="x", templates_dir=tdir)


def test_table_numeric_detection_highlight_and_formats(tmp_path, parse):
    src = ('{% import "_macros.html" as m %}{{ m.table(rows, ["name", "n", {"key": "share", "format": "pct"}, '
           '{"key": "s", "label": "status", "format": "badge"}], highlight="best", max_rows=2) }}')
    tdir = _templates_with(tmp_path, {"t.html": src})
    rows = [{"name": "a", "n": 1234567, "share": 0.5, "s": "ok", "best": False},
            {"name": "b", "n": None, "share": 0.25, "s": "failed", "best": True},
            {"name": "c", "n": 3, "share": 0.1, "s": "ok", "best": False}]
    html = render_string("t.html", {"rows": rows}, title="x", templates_dir=tdir)
    assert '<td class="num">1,234,567</td>' in html and '<td class="num">50.0%</td>' in html
    assert '<tr class="hl">\n<td>b</td>' in html and html.count('class="hl"') == 1
    assert '<span class="badge badge-fail">failed</span>' in html
    assert "Showing 2 of 3 rows" in html and "<td>c</td>" not in html


def test_base_footer_nav_and_example_template(tmp_path, parse):
    """The example from the package docstring renders with base.html's banner, cards and footer."""
    example = """{% extends "base.html" %}
{% import "_macros.html" as m %}
{% block content %}
<h2>Features</h2>
{{ m.table(features, ["name", {"key": "psi", "label": "PSI"}, {"key": "share_missing",
   "label": "missing", "format": "pct"}, {"key": "status", "format": "badge"}], highlight="drifted") }}
{{ m.chart(psi_chart, "PSI per feature; red bars are past the threshold") }}
{% call m.details("Reference statistics") %}{{ m.kv(reference) }}{% endcall %}
{% endblock %}"""
    from mlops.reports import svg
    tdir = _templates_with(tmp_path, {"monitor.html": example})
    run_dir = tmp_path / "run"
    features = [{"name": "amount", "psi": 0.31, "share_missing": 0.0, "status": "fail", "drifted": True},
                {"name": "country", "psi": 0.02, "share_missing": 0.01, "status": "ok", "drifted": False}]
    json_path, html_path = write_report(
        run_dir, "monitor",
        {"status": "warn", "headline": "1 of 2 features drifted", "features": features,
         "cards": [{"label": "drifted", "value": 1, "unit": "of 2", "status": "warn"}],
         "reference": {"rows": 1000}},
        title="Drift monitor", templates_dir=tdir,
        context={"psi_chart": svg.bar_chart([(f["name"], f["psi"]) for f in features], xlabel="PSI",
                                            ylabel="feature", threshold=0.2)},
        run={"id": "run-42", "time": "2024-03-01T12:00:00Z", "config_hash": "abc123"})
    data = json.loads(json_path.read_text())
    assert data["action"] == "monitor" and data["status"] == "warn" and data["title"] == "Drift monitor"
    html = html_path.read_text()
    assert "verdict-warn" in html and "1 of 2 features drifted" in html
    assert 'class="card card-warn"' in html and "run-42" in html and "2024-03-01 12:00 UTC" in html
    assert '<a href="index.html">' in html and (run_dir / "index.html").exists()
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert "<script" not in html


def test_index_link_only_when_index_exists(tmp_path):
    tdir = _templates_with(tmp_path, {"t.html": '{% extends "base.html" %}'})
    out = render_report("t.html", {}, tmp_path / "a.html", title="A", templates_dir=tdir)
    assert "index.html" not in out.read_text()
    (tmp_path / "index.html").write_text("x")
    out = render_report("t.html", {}, tmp_path / "a.html", title="A", templates_dir=tdir)
    assert '<a href="index.html">' in out.read_text()


def test_child_blocks_see_base_macros_without_import(tmp_path):
    tdir = _templates_with(tmp_path, {"t.html": '{% extends "base.html" %}{% block content %}'
                                                '{{ m.badge("failed") }}{% endblock %}'})
    html = render_string("t.html", {}, title="x", templates_dir=tdir)
    assert '<span class="badge badge-fail">failed</span>' in html


def test_write_report_requires_status_and_headline(tmp_path):
    with pytest.raises(ReportError, match="must hold \\['headline'\\]"):
        write_report(tmp_path, "train", {"status": "ok"}, title="t")


def _templates_with(tmp_path: Path, extra: dict[str, str]) -> Path:
    """A templates dir with the real base.html/_macros.html/index.html plus test templates."""
    tdir = tmp_path / "templates"
    tdir.mkdir(exist_ok=True)
    for name in ("base.html", "_macros.html", "index.html"):
        shutil.copy(TEMPLATES_DIR / name, tdir / name)
    for name, src in extra.items():
        (tdir / name).write_text(src)
    return tdir


def test_bar_chart_with_only_a_threshold_is_an_empty_chart_not_a_crash():
    from mlops.reports.svg import bar_chart
    out = str(bar_chart([], xlabel="PSI", ylabel="feature", threshold=(0.25, "trip")))
    assert "no data" in out and out.startswith("<svg")


@pytest.fixture
def fresh_template_cache(tmp_path, monkeypatch):
    """A private temp dir (Jinja's cache lives under it) and a counter of template compilations;
    ``new_process()`` drops the cached environments as a new command would start without them."""
    import tempfile

    import jinja2

    from mlops.reports import render

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    compiled: list[str] = []
    original = jinja2.Environment.compile

    def counting_compile(self, source, name=None, filename=None, *args, **kwargs):
        compiled.append(name)
        return original(self, source, name, filename, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", counting_compile)

    def new_process():
        monkeypatch.setattr(render, "_ENVS", {})

    new_process()
    return compiled, new_process


def test_compiled_templates_are_reused_by_the_next_command_until_the_source_changes(tmp_path,
                                                                                   fresh_template_cache):
    compiled, new_process = fresh_template_cache
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "t.html").write_text("A {{ x }}")
    assert render_string("t.html", {"x": 1}, title="t", templates_dir=templates) == "A 1"
    assert compiled == ["t.html"]
    new_process()
    assert render_string("t.html", {"x": 2}, title="t", templates_dir=templates) == "A 2"
    assert compiled == ["t.html"]  # the second command loaded the compiled code
    (templates / "t.html").write_text("B {{ x }}")
    new_process()
    assert render_string("t.html", {"x": 3}, title="t", templates_dir=templates) == "B 3"
    assert compiled == ["t.html", "t.html"]  # a changed source is compiled again


def test_a_template_cache_that_cannot_be_written_only_costs_a_compilation(tmp_path, monkeypatch,
                                                                         fresh_template_cache):
    import errno

    import jinja2.bccache

    compiled, new_process = fresh_template_cache

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jinja2.bccache.tempfile, "NamedTemporaryFile", disk_full)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "t.html").write_text("A {{ x }}")
    assert render_string("t.html", {"x": 1}, title="t", templates_dir=templates) == "A 1"
    new_process()
    assert render_string("t.html", {"x": 2}, title="t", templates_dir=templates) == "A 2"
    assert compiled == ["t.html", "t.html"]
