"""Both backends compute the same features: generated specs, histories and points.

The frames backend (polars) and the rows backend (plain Python) are compared on every
feature of every point, with the point's status under the plan's rules. Floats must be
equal bit for bit (NaN with NaN, null with null), stronger than the 1e-12 relative the
issue asks: the aggregates are exact and the expression forms follow polars' own. A
deliberately wrong row form is found by the same comparison and by the start-up probe.
"""
from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, assume, find, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from backend_cases import SCHEMA, frame, histories, points, specs  # noqa: E402

from mlops.errors import FeatureSpecError  # noqa: E402
from mlops.features.aggregates import AGGREGATES  # noqa: E402
from mlops.features.backends import compare_backends, probe_rows, same_value  # noqa: E402
from mlops.features.backends.frames import compute_at  # noqa: E402
from mlops.features.compile import compile_plan  # noqa: E402

CASES = st.tuples(specs(), histories(), points())


def differences(case) -> list[dict] | None:
    """The backends' differences on one case, and the frames backend's between the last
    point alone and in its batch (a request of one record against one of several); None
    when the case does not apply (a spec polars rejects, or a plan without rows)."""
    spec, history, pts = case
    try:
        plan = compile_plan(spec, SCHEMA)
    except FeatureSpecError:
        return None
    if "rows" not in plan.backends:
        return None
    diffs = compare_backends(plan, frame(history), frame(pts))
    batch = compute_at(plan, frame(history), frame(pts)).collect().row(-1, named=True)
    alone = compute_at(plan, frame(history), frame(pts[-1:])).collect().row(0, named=True)
    return diffs + [{"feature": n, "batch": batch[n], "alone": alone[n]}
                    for n in plan.feature_names if not same_value(batch[n], alone[n])]


# 500 valid examples: a case only counts when both backends were compared (``assume``
# discards the rest, which hypothesis does not count toward ``max_examples``)
@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(CASES)
def test_backend_frames_and_rows_agree_on_generated_specs_and_histories(case):
    diffs = differences(case)
    assume(diffs is not None)
    assert diffs == []


def test_backend_a_division_by_a_constant_that_folds_to_null_is_null_on_both():
    """Found by the property test: the rows backend took the reciprocal of every constant
    divisor (polars' multiply-by-reciprocal) and crashed on float(None) when the constant
    is NULL; polars answers null, and so do the rows now."""
    from datetime import datetime
    spec = {"name": "prop", "entity": "user", "timestamp": "ts", "raw": [], "categorical": [],
            "windows": [{"column": "x", "aggs": ["count"], "periods": ["1s"], "default": None}],
            "derived": [{"name": "p0", "expr": "(CAST((EXTRACT(HOUR FROM ts) + 5e-1) IS NOT NULL "
                                               "AS DOUBLE)) / (CAST((CASE WHEN (0) = (1) THEN 0 END)"
                                               " IN (1, 2.5, -3) AS DOUBLE))"},
                        {"name": "p1", "expr": "x / CAST(NULL AS DOUBLE)"}]}
    point = [{"user": "a", "ts": datetime(2024, 1, 1), "x": 0.0, "y": None, "cat": "u", "eid": 0}]
    plan = compile_plan(spec, SCHEMA)
    assert "rows" in plan.backends
    assert differences((spec, [], point)) == []
    got = compute_at(plan, frame([]), frame(point)).collect().row(0, named=True)
    assert got["p0"] is None and got["p1"] is None  # polars: a number over null is null


@pytest.fixture
def naive_mean(monkeypatch):
    """The rows backend's mean as a plain left-to-right float sum over the count: right
    to within an ulp or two, never bit for bit on every window."""
    def mean(values, n, latest, t):
        return sum(values) / len(values) if values else None
    monkeypatch.setitem(AGGREGATES, "mean", replace(AGGREGATES["mean"], row=mean))


def test_backend_a_wrong_row_aggregate_is_found_by_the_property(naive_mean):
    found = find(CASES, lambda case: bool(differences(case)),
                 settings=settings(max_examples=500, deadline=None, database=None,
                                   phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
    diffs = differences(found)
    assert diffs and all("rows" in d for d in diffs)  # rows against frames, not frames alone
    assert all("mean" in d["feature"] or d["feature"].startswith("p") for d in diffs)


def _probe_history() -> pl.DataFrame:
    """Three entities, values whose naive running sums round differently from exact ones."""
    rows = [{"user": "abc"[i % 3], "ts": i * 1_000_000, "x": [0.1, 0.2, 0.3, 1e16, -1e16, 7.7][i % 6],
             "y": 1.0, "cat": "u", "eid": i} for i in range(300)]
    return pl.DataFrame(rows, schema={**SCHEMA, "ts": pl.Int64}).with_columns(
        pl.col("ts").cast(pl.Datetime("us")))


PROBE_SPEC = {"name": "probe", "entity": "user", "timestamp": "ts", "raw": ["x"],
              "windows": [{"column": "x", "aggs": ["sum", "mean", "std"], "periods": ["10s", "1m"]}],
              "derived": [{"name": "ratio", "expr": "x / (x_mean_1m + 1)"}]}


def test_backend_probe_is_clean_on_a_good_plan_and_catches_a_wrong_aggregate(monkeypatch):
    history = _probe_history()
    plan = compile_plan(PROBE_SPEC, history.schema)
    assert plan.backends == ("frames", "rows")
    assert probe_rows(plan, history, sample=100) == []

    def mean(values, n, latest, t):
        return sum(values) / len(values) if values else None
    monkeypatch.setitem(AGGREGATES, "mean", replace(AGGREGATES["mean"], row=mean))
    diffs = probe_rows(plan, history, sample=100)
    assert diffs and {d["feature"] for d in diffs} <= {"x_mean_10s", "x_mean_1m", "ratio"}
    assert all(not math.isnan(d["frames"]) for d in diffs)
