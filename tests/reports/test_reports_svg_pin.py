"""Refactor guard: the charts draw byte-identical SVG.

The digests were computed from the chart code before issue 16 split the long chart
functions into helpers. Update a pin only for a deliberate change of the drawing.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from mlops.reports import svg

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
LONG = [f"category number {i} with a long name" for i in range(12)]
WAVE = [(i, ((i * 37) % 101) / 100) for i in range(500)]
CHARTS = {
    "hist_inner_edges": lambda: svg.histogram_overlay([1.0, 2.0], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3],
                                                      xlabel="amount"),
    "hist_full_edges_counts": lambda: svg.histogram_overlay([0, 10, 20, 30], [5, 9, 2], [4, 12, 1],
                                                            xlabel="age", labels=("train", "live")),
    "hist_long_categories": lambda: svg.histogram_overlay(
        LONG, [1 / 12] * 12, [(i + 1) / 78 for i in range(12)], xlabel="merchant", title="t"),
    "hist_many_bins": lambda: svg.histogram_overlay(list(range(89)), [1 / 90] * 90,
                                                    [(i % 3) / 90 for i in range(90)], xlabel="x",
                                                    percent=False),
    "line_numeric": lambda: svg.line_chart({"auc": [(0, 0.9), (1, 0.8), (2, None), (3, 0.7),
                                                    (4, float("nan")), (5, 0.6), (6, 0.65)]},
                                           xlabel="week", ylabel="AUC", thresholds=[(0.75, "gate")]),
    "line_time_markers": lambda: svg.line_chart(
        {"AUC": [(T0 + dt.timedelta(days=i), 0.9 - 0.01 * i) for i in range(10)],
         "F1": [(T0 + dt.timedelta(days=i), 0.5 + 0.02 * i) for i in range(0, 10, 2)]},
        xlabel="day", ylabel="score", x_is_time=True, thresholds=[(0.85, "gate"), (0.4, "floor")],
        markers=[(T0 + dt.timedelta(days=2), "ADWIN drift"), (T0 + dt.timedelta(days=9), "late"),
                 (None, "dropped"), (T0 + dt.timedelta(days=4), "third"),
                 (T0 + dt.timedelta(days=5), "fourth")]),
    "line_many_series_long": lambda: svg.line_chart(
        {f"s{k}": [(x, y * (k + 1) / 6 if x % 50 else None) for x, y in WAVE] for k in range(6)},
        xlabel="i", ylabel="v", width=500, height=260),
    "line_single_x": lambda: svg.line_chart({"a": [(3, 1.0)]}, xlabel="x", ylabel="y"),
    "confusion_2x2": lambda: svg.confusion_matrix([[9500, 120], [45, 335]], ["legit", "fraud"]),
    "confusion_many": lambda: svg.confusion_matrix(
        [[(i * 7 + j * 3) % 11 if i != j else 40 for j in range(12)] for i in range(12)], LONG,
        title="many"),
    "confusion_zero_row": lambda: svg.confusion_matrix([[0, 0], [3, 1]], ["a", "b"]),
    "bars": lambda: svg.bar_chart([("a", 0.3), ("b", 0.1), ("c", None)], xlabel="PSI",
                                  ylabel="feature", threshold=(0.2, "alert")),
    "forest": lambda: svg.forest_plot([{"label": "sig", "estimate": 2, "low": 1, "high": 3},
                                       {"label": "null", "estimate": 0.5, "low": -1, "high": 2}],
                                      xlabel="lift (pp)"),
    "calibration": lambda: svg.calibration_curve([(0.1, 0.12, 100), (0.5, 0.4, None), (0.9, 0.8, 10)]),
}
PINNED = {
    "bars": "c28a67ccc8f8011cca2dfaf6be8c0d177311bcdebcbf1db624709b4f0053b8fc",
    "calibration": "370922295ba81b2332f6f7c350c4d887ff7326bb12ac450c4bbcf1a36674cef5",
    "confusion_2x2": "579fbc5e716ae1da689abbc97306e0a9306c61e870e47bbe452898ccc971ed3f",
    "confusion_many": "184c65f82a2a143677e826e585d0b33ee635b5348264ca1347aad84d00ffd780",
    "confusion_zero_row": "dedebc81f2758a33916679f3185ab91cfab5e68f5f80043f1da6b8c90df2e303",
    "forest": "567070265f161da6661b0f7e0dabbf6658d345b763cce85ffc481b566f2bae3f",
    "hist_full_edges_counts": "0b6064e6de3b24209d196a0a9164785dd40fdc14eb1a5679348210817302c250",
    "hist_inner_edges": "1a3004ad359ec695e8d400d6f46f0c0a1df77231b56f60e36743cd3a3c4c3a96",
    "hist_long_categories": "d69a181aa8ea457131577c4097e73841aad8f09de03eba0a6958a21ef23d8326",
    "hist_many_bins": "1efc91c02c51306bd953a9d55ef468c86c895a1c883ac285ea6e7e2af7ea0070",
    "line_many_series_long": "2b5a91955b3ad8d7f9d0dc4b60e10d0e69f0df4a5bade8faf36b21a5334a1707",
    "line_numeric": "e00a2a1a891340350486dc9cfce1dafb7ad496b42c57b091735aa5e968aa00ee",
    "line_single_x": "1f245b07d102efe7d955fe6347ab88ff77ee841076da12cd88836b873aa669b4",
    "line_time_markers": "c9f174e2a45e8e4ff413b756db9d82c47c23098f32ed0973eaf1a12a6a624ad4",
}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_markup_is_pinned(name):
    assert hashlib.sha256(str(CHARTS[name]()).encode()).hexdigest() == PINNED[name]
