"""SVG charts: well-formed XML, titles and axis labels, escaping, gaps, ticks, size."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest
from markupsafe import Markup

from mlops.reports import svg
from mlops.reports.axes import nice_ticks, tick_label, time_ticks

NS = "{http://www.w3.org/2000/svg}"


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{NS}text")]


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    root = ET.fromstring(str(markup))
    assert root.tag == f"{NS}svg"
    assert root.get("viewBox") and root.get("role") == "img" and root.get("aria-label")
    assert root.find(f"{NS}title") is not None
    return root


T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
CHARTS = {
    "hist": lambda s: svg.histogram_overlay([1.0, 2.0], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], xlabel=s),
    "line": lambda s: svg.line_chart({s: [(1, 0.5), (2, 0.7)]}, xlabel=s, ylabel="AUC",
                                     thresholds=[(0.6, s)], markers=[(1.5, s)]),
    "forest": lambda s: svg.forest_plot([{"label": s, "estimate": 0.1, "low": 0.0, "high": 0.2}], xlabel=s),
    "calibration": lambda s: svg.calibration_curve([(0.1, 0.12, 100), (0.9, 0.8, 10)], xlabel=s),
    "confusion": lambda s: svg.confusion_matrix([[5, 1], [2, 7]], [s, "b"], xlabel=s),
    "bars": lambda s: svg.bar_chart([(s, 1.0), ("b", 2.0)], xlabel=s, ylabel="feature", threshold=(1.5, s)),
}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_is_wellformed_and_escapes_labels(name, xss):
    markup = CHARTS[name](xss)
    assert xss not in str(markup) and "<script" not in str(markup)
    root = parse(markup)
    assert not list(root.iter(f"{NS}script")) and not list(root.iter("script"))
    # the untrusted label survives as plain text (in <text> and/or <title>)
    all_text = texts(root) + ["".join(t.itertext()) for t in root.iter(f"{NS}title")]
    assert any(xss in t or xss[:10] in t for t in all_text)
    # coordinates are rounded to one decimal
    assert not re.search(r'\b(?:x|y|x1|x2|y1|y2|cx|cy|r|width|height)="-?\d+\.\d{2,}"', str(markup))
    assert not any(re.search(r"\d\.\d{2,}", p.get("d")) for p in root.iter(f"{NS}path"))


def test_title_escaped_in_title_and_aria_label(xss):
    root = parse(svg.bar_chart([("a", 1)], xlabel="x", ylabel="y", title=xss))
    assert root.get("aria-label") == xss and root.find(f"{NS}title").text == xss


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_axis_labels_present(name):
    labels = texts(parse(CHARTS[name]("my x label")))
    assert "my x label" in labels


def test_histogram_open_outer_bins_and_categories():
    labels = texts(parse(svg.histogram_overlay([10, 20, 30], [0.1, 0.2, 0.3, 0.4], [0.25] * 4,
                                               xlabel="amount (EUR)")))
    assert ["< 10", "[10, 20)", "[20, 30)", ">= 30"] == [t for t in labels if t[0] in "<[>"]
    assert "share of rows" in labels and "100%" not in labels and "40%" in labels
    cats = texts(parse(svg.histogram_overlay(["DE", "FR", "unseen"], [0.5, 0.5, 0], [0.4, 0.4, 0.2],
                                             xlabel="country")))
    assert {"DE", "FR", "unseen", "country", "reference", "current"} <= set(cats)
    with pytest.raises(ValueError, match="inner edges"):
        svg.histogram_overlay([1.0], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5], xlabel="x")
    with pytest.raises(ValueError, match="cur_shares"):
        svg.histogram_overlay(["a", "b"], [0.5, 0.5], [1.0], xlabel="x")


def test_line_chart_none_breaks_the_line():
    root = parse(svg.line_chart({"auc": [(0, 0.9), (1, 0.8), (2, None), (3, 0.7), (4, float("nan")),
                                         (5, 0.6), (6, 0.65)]}, xlabel="week", ylabel="AUC"))
    paths = [p.get("d") for p in root.iter(f"{NS}path")]
    assert len(paths) == 1
    # two drawn segments ((0,1) and (5,6)); the isolated point 3 is a dot, not a line
    assert paths[0].count("M") == 2 and paths[0].count("L") == 2
    assert len(list(root.iter(f"{NS}circle"))) == 5  # every non-missing point of a short series


def test_line_chart_time_axis_thresholds_markers():
    pts = [(T0 + dt.timedelta(days=i), 0.9 - 0.01 * i) for i in range(10)]
    labels = texts(parse(svg.line_chart({"AUC": pts}, xlabel="day", ylabel="AUC", x_is_time=True,
                                        thresholds=[(0.85, "gate")],
                                        markers=[(T0 + dt.timedelta(days=5), "ADWIN drift")])))
    assert "day (UTC)" in labels and "AUC" in labels and "ADWIN drift" in labels
    assert "gate (0.85)" in labels and "2024-03-02" in labels


def test_line_chart_keeps_large_series_small():
    pts = [(i, (i % 100) / 100) for i in range(20_000)]
    out = str(svg.line_chart({"a": pts, "b": [(x, y / 2) for x, y in pts]}, xlabel="i", ylabel="v"))
    ET.fromstring(out)
    assert len(out) < 100_000  # at most 4 points per pixel column and series are kept
    # decimation keeps the extremes: same vertical extent as a 2-point line over the same range
    ref = str(svg.line_chart({"a": [(0, 0.0), (19_999, 0.99)], "b": [(0, 0.0), (1, 0.0)]},
                             xlabel="i", ylabel="v"))

    def y_extent(markup: str) -> tuple[float, float]:
        d = ET.fromstring(markup).find(f"{NS}g/{NS}path").get("d")
        ys = [float(y) for y in re.findall(r"[ML][\d.]+ ([\d.]+)", d)]
        return min(ys), max(ys)

    assert y_extent(out) == y_extent(ref)


def test_nice_ticks_hand_examples():
    assert nice_ticks(0.03, 0.91) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(-1.1, 0.5) == [-1.5, -1.0, -0.5, 0.0, 0.5]
    assert nice_ticks(3, 3) == pytest.approx([2.6, 2.8, 3.0, 3.2, 3.4])
    assert nice_ticks(1.3, 9.7, extend=False) == [2, 4, 6, 8]
    assert [tick_label(t, [0, 0.25, 0.5]) for t in (0, 0.25, 0.5)] == ["0.00", "0.25", "0.50"]
    assert tick_label(0.2, [0, 0.1, 0.2], percent=True) == "20%"
    assert tick_label(20000, [0, 10000, 20000]) == "20k"


def test_time_ticks_round_days():
    start = T0.timestamp()
    ticks = time_ticks(start, start + 5 * 86400)
    assert [lab for _, lab in ticks] == [f"2024-03-0{d}" for d in range(1, 7)]
    hours = time_ticks(start, start + 6 * 3600)
    assert [lab for _, lab in hours][:3] == ["00:00", "01:00", "02:00"]


def test_forest_plot_colours_intervals_that_exclude_the_reference():
    root = parse(svg.forest_plot([{"label": "sig", "estimate": 2, "low": 1, "high": 3},
                                  {"label": "null", "estimate": 0.5, "low": -1, "high": 2}],
                                 xlabel="lift (pp)", ref_line=0.0))
    squares = [r for r in root.iter(f"{NS}rect") if r.get("width") == "9"]
    assert [s.get("fill") for s in squares] == ["#2563eb", "#6b7280"]
    assert "2 [1, 3]" in texts(root)


def test_confusion_matrix_counts_and_validation():
    labels = texts(parse(svg.confusion_matrix([[9500, 120], [45, 335]], ["legit", "fraud"])))
    assert {"9,500", "120", "45", "335", "99%", "88%", "predicted class", "actual class"} <= set(labels)
    with pytest.raises(ValueError, match="2x2"):
        svg.confusion_matrix([[1, 2, 3], [4, 5, 6]], ["a", "b"])


def test_calibration_curve_has_diagonal_and_points():
    root = parse(svg.calibration_curve([(0.1, 0.12, 100), (0.5, 0.4, None), (0.9, 0.8, 10)]))
    assert len(list(root.iter(f"{NS}circle"))) == 3
    assert any(l.get("stroke-dasharray") for l in root.iter(f"{NS}line"))
    assert {"mean predicted probability", "observed frequency"} <= set(texts(root))


def test_bar_chart_threshold_colours_bars():
    root = parse(svg.bar_chart([("a", 0.3), ("b", 0.1), ("c", None)], xlabel="PSI", ylabel="feature",
                               threshold=0.2))
    fills = [r.get("fill") for r in root.iter(f"{NS}rect")]
    assert fills == ["#dc2626", "#2563eb"]  # c (None) draws no bar
    assert "threshold 0.2" in texts(root) and "—" in texts(root)


def test_sparkline_and_empty_inputs():
    spark = parse(svg.sparkline_hist([1, 4, 0, 2]))
    assert spark.get("width") == "80"
    assert spark.find(f"{NS}path").get("d").count("z") == 3  # one bar per non-empty bin
    for empty in (svg.line_chart({}, xlabel="x", ylabel="y"), svg.bar_chart([], xlabel="x", ylabel="y"),
                  svg.histogram_overlay([], [], [], xlabel="x"), svg.sparkline_hist([])):
        parse(empty)
