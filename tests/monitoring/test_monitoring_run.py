"""The monitoring pipeline on typed inputs (monitoring/run.py, concept.py, compare_datasets):
checked against the building blocks it wires (detect_drift, sklearn metrics, hand-worked
error streams) rather than against itself."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from mlops.errors import ConfigError, DataError
from mlops.monitoring.compare import compare_datasets, compare_frames, plan_columns
from mlops.monitoring.concept import ConceptSettings, error_stream
from mlops.monitoring.drift import detect_drift
from mlops.monitoring.multivariate import MultivariateSettings
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.reference import fit_reference
from mlops.monitoring.run import ModelFacts, MonitorSettings, run_monitor, split_reference, window_bounds

T0 = datetime(2024, 1, 1)
OFF = MultivariateSettings(enabled=False)


def _world(n_ref=2000, n_cur=1500, shift=0.0, seed=0, flip=False):
    rng = np.random.default_rng(seed)
    x_ref = rng.normal(size=n_ref)  # the model scores the reference as it scores the stream
    ref = pl.DataFrame({"x": x_ref, "c": rng.choice(["a", "b"], n_ref).tolist(),
                        "prediction": 1 / (1 + np.exp(-3 * x_ref))})
    x = rng.normal(shift, size=n_cur)
    p = 1 / (1 + np.exp(-3 * x))
    y = (rng.uniform(size=n_cur) < p).astype(int)
    if flip:  # the concept changes in the second half: labels invert
        y[n_cur // 2:] = 1 - y[n_cur // 2:]
    stream = pl.DataFrame({
        "ts": [T0 + timedelta(hours=i) for i in range(n_cur)], "x": x,
        "c": rng.choice(["a", "b"], n_cur).tolist(), "prediction": p, "y": y,
        "__labelled": [True] * n_cur, "__in_window": [i >= 200 for i in range(n_cur)]})
    return fit_reference(ref, numeric=["x", "prediction"], categorical=["c"]), stream


def _run(reference, stream, baseline=0.8, **concept):
    settings = MonitorSettings(policy=DriftPolicy(), multivariate=OFF,
                               concept=ConceptSettings(**concept))
    facts = ModelFacts("m", 3, "production", metrics={"roc_auc": baseline})
    return run_monitor(reference, stream, settings, model=facts, timestamp="ts", label="y",
                       current_info={"source": "window"}, reference_path="ref.npz")


def test_data_drift_equals_detect_drift_on_the_inputs_only():
    ref, stream = _world(shift=1.0)
    result = _run(ref, stream)
    inputs, pred = split_reference(ref)
    cur = stream.filter(pl.col("__in_window"))
    # x, c and the score are one family of 3, judged together
    expected = detect_drift(inputs, cur, DriftPolicy(), family_size=3)
    out = result.to_json()
    assert out["features"] == expected["features"] and "prediction" not in out["features"]
    assert out["prediction_drift"] == detect_drift(pred, cur, DriftPolicy(), family_size=3)["features"]["prediction"]
    assert out["policy"]["family_size"] == 3 and out["policy"]["dataset_rule"] == "any feature"
    assert out["features"]["x"]["drift"] and result.data_drift and result.status == "fail"
    assert out["model"] == {"name": "m", "version": 3, "alias": "production"}
    assert out["reference"] == {"path": "ref.npz"} and out["multivariate"] is None


def test_performance_chunks_match_sklearn_and_flag_the_concept_change():
    ref, stream = _world(flip=True)
    result = _run(ref, stream, chunk="300", detectors={"page_hinkley": {}})
    perf = result.to_json()["performance"]
    cur = stream.filter(pl.col("__in_window"))
    first = perf["chunks"][0]  # chunks of 300 consecutive rows in time order
    rows = cur.head(300)
    assert first["value"] == pytest.approx(roc_auc_score(rows["y"], rows["prediction"]))
    assert perf["concept_drift"] and perf["labelled_rows"] == cur.height
    assert "performance dropped" in result.headline
    # burn-in rows are the labelled rows before the window: 200 here
    assert result.current["detector_burn_in_rows"] == 200
    assert result.to_json()["detectors"]["page_hinkley"]["n"] == stream.height


def test_no_baseline_means_no_performance_and_no_detectors():
    ref, stream = _world()
    settings = MonitorSettings(policy=DriftPolicy(), multivariate=OFF)
    result = run_monitor(ref, stream, settings, model=ModelFacts("m", 1, "production"),
                         timestamp="ts", label="y", current_info={}, reference_path="r")
    out = result.to_json()
    assert out["performance"]["chunks"] == [] and out["detectors"] == {}
    assert out["performance"]["baseline"] is None and out["performance"]["limit"] is None
    assert "detector_burn_in_rows" not in out["current"]
    assert result.status == "ok" and not result.found


def test_error_stream_by_hand():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.7, 0.2, 0.1])
    assert error_stream(y, p, 0.5, "errors").tolist() == [0, 1, 1, 0]
    assert error_stream(y, p, 0.5, "missed_positives").tolist() == [0, 1]
    assert error_stream(y, p, 0.5, "errors", task="regression").tolist() == pytest.approx(
        [0.1, 0.7, 0.8, 0.1])
    with pytest.raises(ConfigError, match="missed_positives"):
        error_stream(y, p, 0.5, "nope")


def test_window_bounds():
    first, last = datetime(2024, 1, 1), datetime(2024, 3, 1)
    assert window_bounds(first, last, None, 7) == (last - timedelta(days=7),
                                                   last + timedelta(microseconds=1))
    assert window_bounds(first, last, 10, 5) == (datetime(2024, 1, 11), datetime(2024, 1, 16))
    with pytest.raises(ConfigError) as err:
        window_bounds(first, last, None, 0)
    assert err.value.key == "monitoring.window.days"


def test_compare_datasets_equals_compare_frames_and_reads_a_fitted_reference():
    ref, stream = _world(shift=0.5)
    rows = stream.select("x", "c")
    ref_rows = rows.sample(800, seed=1)
    drift, n = compare_datasets(ref_rows, rows, DriftPolicy(), multivariate=OFF)
    plan = plan_columns(ref_rows.schema, rows.schema)
    assert drift == {**compare_frames(ref_rows, rows, plan, DriftPolicy()), "multivariate": None}
    assert n == 800
    fitted, n_fit = compare_datasets(ref, stream, DriftPolicy(), multivariate=OFF)
    assert set(fitted["features"]) == {"x", "c", "prediction"} and n_fit == 2000
    with pytest.raises(DataError, match="lacks column"):
        compare_datasets(ref, rows, DriftPolicy(), multivariate=OFF)


def test_multivariate_settings_are_checked_only_when_enabled():
    MultivariateSettings(enabled=False, folds=1)
    with pytest.raises(ConfigError) as err:
        MultivariateSettings(folds=1)
    assert err.value.key == "multivariate.folds"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_broken_input_is_a_data_quality_alert_not_insufficient_data(value):
    ref, stream = _world()
    broken = stream.with_columns(pl.lit(value, pl.Float64).alias("x"))
    result = _run(ref, broken)
    out = result.to_json()
    assert out["quality"] == [{"feature": "x", "issue": "no valid value in 1300 rows (all null or NaN/inf)"}]
    assert result.found and result.status == "fail"
    assert any(r.startswith("data quality: x") for r in result.reasons())
    half = stream.with_columns(pl.when(pl.int_range(pl.len()) % 4 == 0).then(pl.col("x"))
                               .otherwise(None).alias("x"))
    assert "mostly missing: 75%" in _run(ref, half).to_json()["quality"][0]["issue"]


def test_a_feature_that_is_often_half_missing_is_no_quality_alert():
    """Half-null window features (no earlier event in the day) wobble around 50% missing in
    every chunk of the reference; a window at 55% is their normal, not a broken input."""
    rng = np.random.default_rng(4)
    n = 6000
    share = 0.45 + 0.08 * np.sin(np.arange(n) / n * 6 * np.pi)      # 37%..53% by chunk
    x = np.where(rng.uniform(size=n) < share, np.nan, rng.normal(size=n))
    ref = fit_reference(pl.DataFrame({"ts": [T0 + timedelta(minutes=i) for i in range(n)], "x": x}),
                        numeric=["x"], categorical=[], timestamp="ts")
    cur = pl.DataFrame({"x": np.where(rng.uniform(size=1000) < 0.55, np.nan, rng.normal(size=1000))})
    assert detect_drift(ref, cur)["quality"] == []
    broken = pl.DataFrame({"x": np.where(rng.uniform(size=1000) < 0.9, np.nan, rng.normal(size=1000))})
    assert "mostly missing: 9" in detect_drift(ref, broken)["quality"][0]["issue"]


def test_model_facts_of_a_registered_version_keep_its_task_and_metrics():
    from mlops.registry import ModelVersion
    mv = ModelVersion(name="m", version=4, created_at="", who="", code_version=None, parent=None,
                      artifact_sha256="", artifact_path="a", artifact_size=0, model_class="",
                      metrics={"mae": 1.5}, tags={"task": "regression"})
    facts = ModelFacts.of(mv, "staging")
    assert facts == ModelFacts("m", 4, "staging", task="regression", metrics={"mae": 1.5})
    mv.metrics["mae"] = 9.0  # a copy: the registry's record is not the report's
    assert facts.metrics == {"mae": 1.5}
