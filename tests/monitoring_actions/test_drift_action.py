"""action=drift: two datasets, no model, no registry (issue 11.6), with history (14.4)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.stats
from scipy.spatial.distance import jensenshannon

NO_MV = "monitoring.multivariate.enabled=false"
MV_ON = "monitoring.multivariate.enabled=true"  # off by default in action=drift
FIELDS = {"type", "test", "threshold", "status", "drift", "score", "limit", "limit_text", "quality", "psi", "js",
          "ks_stat",
          "ks_pvalue", "wasserstein", "exact", "ref_rows", "cur_rows", "ref_null_share", "cur_null_share",
          "cur_nonfinite", "hist", "note"}


def _table(n, *, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1)
    return pl.DataFrame({
        "reading_ts": [start + timedelta(minutes=i) for i in range(n)],
        "temperature": rng.normal(20 + shift, 3, size=n),
        "humidity": rng.uniform(30 + 2 * shift, 60 + 2 * shift, size=n),
        "site": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]).tolist(),
    })


@pytest.fixture
def data(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    ref = _table(3000, seed=1)
    ref.head(1500).write_parquet(d / "ref_a.parquet")
    ref.tail(1500).write_parquet(d / "ref_b.parquet")
    _table(3000, seed=2).write_parquet(d / "same.parquet")
    _table(3000, shift=3.0, seed=3).write_csv(d / "shifted.csv")
    return d


def _drift(run_action, *overrides, out="drift"):
    code, d = run_action("action=drift", *overrides, out=out)
    path = d / "drift.json"
    return code, (json.loads(path.read_text()) if path.exists() else
                  json.loads((d / "result.json").read_text()))


def test_shifted_data_drifts_exits_3_and_alerts(run_action, data, tmp_path):
    code, out = _drift(run_action, f"monitoring.reference={data}/ref_*.parquet",
                       f"monitoring.current={data}/shifted.csv", NO_MV)
    assert code == 3 and out["status"] == "fail" and out["dataset_drift"] is True
    temp = out["features"]["temperature"]
    assert set(temp) == FIELDS and temp["status"] == "drift"
    ref = pl.read_parquet(data / "ref_*.parquet")["temperature"].to_numpy()
    cur = pl.read_csv(data / "shifted.csv")["temperature"].to_numpy()
    assert temp["test"] == "js"  # calibrated: the distance on the reference's quantile bins
    edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1)
    assert temp["score"] == pytest.approx(jensenshannon(r / r.sum(), c / c.sum(), base=2))
    assert temp["wasserstein"] == pytest.approx(scipy.stats.wasserstein_distance(ref, cur) / ref.std())
    assert temp["limit"]["source"] in ("calibrated", "floor") and temp["score"] > temp["threshold"]
    assert out["features"]["site"]["type"] == "categorical"
    assert "reading_ts" in out["skipped"]  # a timestamp drifts by construction
    assert out["reference"]["files"] == 2 and out["current"]["rows"] == 3000
    alerts = [json.loads(x) for x in (tmp_path / "home" / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1 and alerts[0]["series"].startswith("drift:")
    html = (tmp_path / "drift" / "drift.html").read_text()
    assert "Drift over time" in html and "temperature" in html


def test_same_distribution_is_quiet_and_history_grows(run_action, data, tmp_path):
    args = [f"monitoring.reference={data}/ref_*.parquet", f"monitoring.current={data}/same.parquet"]
    code, out = _drift(run_action, *args, MV_ON, out="r1")
    assert code == 0 and out["dataset_drift"] is False and out["n_drifted"] == 0
    mv = out["multivariate"]
    assert mv["status"] == "no_drift" and abs(mv["auc"] - 0.5) < 0.05
    code, out = _drift(run_action, *args, NO_MV, out="r2")
    lines = (tmp_path / "home" / "monitoring" / "history.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert len(records) == 2 and {r["series"] for r in records} == {f"drift:{data}/ref_*.parquet"}
    assert records[0]["multivariate"]["auc"] == pytest.approx(mv["auc"])
    f = records[1]["features"]["temperature"]
    assert f == {k: out["features"]["temperature"][k]
                 for k in ("test", "threshold", "score", "status", "ref_rows", "cur_rows")}
    assert records[1]["run_dir"].endswith("r2")
    assert "2 run(s)" in (tmp_path / "r2" / "drift.html").read_text()


def test_exact_by_default_multivariate_off_a_sample_only_when_declared(run_action, data, tmp_path):
    args = [f"monitoring.reference={data}/ref_*.parquet", f"monitoring.current={data}/shifted.csv"]
    code, out = _drift(run_action, *args, out="exact")
    assert out["multivariate"] is None  # off by default in action=drift
    assert out["reference_values"]["exact"] is True and out["features"]["temperature"]["exact"] is True
    ref = pl.read_parquet(data / "ref_*.parquet")["humidity"].to_numpy()
    cur = pl.read_csv(data / "shifted.csv")["humidity"].to_numpy()
    hum = out["features"]["humidity"]
    assert hum["ks_stat"] == pytest.approx(scipy.stats.ks_2samp(ref, cur).statistic, rel=1e-12)
    assert hum["wasserstein"] == pytest.approx(scipy.stats.wasserstein_distance(ref, cur) / ref.std(), rel=1e-9)
    assert "Not run" in (tmp_path / "exact" / "drift.html").read_text()
    code, out = _drift(run_action, *args, "monitoring.reference_max_rows=500", out="sampled")
    rv = out["reference_values"]
    assert rv["exact"] is False and rv["max_rows"] == 500
    assert rv["sampled"]["humidity"] == {"kept": 500, "valid": 3000}
    assert out["features"]["humidity"]["exact"] is False and out["calibration"]["thinned_every"] == 6
    assert "Sampled reference" in (tmp_path / "sampled" / "drift.html").read_text()
    code, out = _drift(run_action, *args, "monitoring.reference_max_rows=1", out="bad")
    assert code == 2 and "monitoring.reference_max_rows" in out["error"]


def test_columns_overrides_and_types(run_action, data):
    code, out = _drift(run_action, f"monitoring.reference={data}/ref_*.parquet",
                       f"monitoring.current={data}/shifted.csv", NO_MV,
                       "monitoring.columns=[temperature,humidity]",
                       "+monitoring.features.temperature={test: psi, threshold: 0.25}",
                       "+monitoring.column_types.humidity=categorical",
                       "monitoring.on_drift=[]")
    assert code == 0  # drift found, but no alert configured
    assert set(out["features"]) == {"temperature", "humidity"}
    assert out["features"]["temperature"]["test"] == "psi"
    assert out["features"]["temperature"]["threshold"] == 0.25
    assert out["features"]["humidity"]["type"] == "categorical"


def test_one_row_is_insufficient_not_drift(run_action, data, tmp_path):
    _table(1, shift=50.0).write_parquet(data / "one.parquet")
    code, out = _drift(run_action, f"monitoring.reference={data}/ref_*.parquet",
                       f"monitoring.current={data}/one.parquet", MV_ON)
    assert code == 0 and out["status"] == "warn"
    assert out["dataset_status"] == "insufficient_data" and out["n_drifted"] == 0
    assert "insufficient data" in out["headline"]
    assert out["multivariate"]["status"] == "insufficient_data"
    assert not (tmp_path / "home" / "alerts.jsonl").exists()


@pytest.mark.parametrize("case,needle", [
    ("missing", "monitoring.reference: is required for action=drift"),
    ("no_match", "monitoring.current: no file matches"),
    ("malformed", "bad.parquet"),
    ("no_shared", "share no column: reference has ['reading_ts', 'temperature'"),
])
def test_errors_are_one_line_exit_2(run_action, data, case, needle):
    (data / "bad.parquet").write_bytes(b"not a parquet file at all")
    pl.DataFrame({"other": [1, 2]}).write_parquet(data / "other.parquet")
    ref = f"monitoring.reference={data}/ref_*.parquet"
    args = {"missing": [f"monitoring.current={data}/same.parquet"],
            "no_match": [ref, f"monitoring.current={data}/nothing_*.parquet"],
            "malformed": [ref, f"monitoring.current={data}/bad.parquet"],
            "no_shared": [ref, f"monitoring.current={data}/other.parquet"]}[case]
    code, out = _drift(run_action, *args)
    assert code == 2 and needle in out["error"] and "\n" not in out["error"]
    if case == "no_match":
        assert "nothing_*.parquet" in out["error"]
    if case == "malformed":
        assert out["error"].startswith("monitoring.current: ") and "Fix:" in out["error"]


# --- drift inputs a user leaves as they are (issue 20, item 4) ------------------------------

def _orders(n, *, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1) + timedelta(days=40 * seed)
    return pl.DataFrame({
        "order_ref": [f"O{seed}-{i:06d}" for i in range(n)],           # unique per row
        "line_no": np.arange(n) + seed * n,                            # unique integers
        "shop": rng.choice([f"s{k}" for k in range(30)], n).tolist(),  # an entity (many repeats)
        "placed_at": [start + timedelta(minutes=7 * i) for i in range(n)],
        "basket": rng.lognormal(3 + shift, 0.4, n), "region": rng.choice(["n", "s"], n).tolist(),
        "returned": rng.integers(0, 2, n),
    })


def test_ids_timestamps_and_labels_are_left_out_and_listed(run_action, tmp_path):
    d = tmp_path / "orders"
    d.mkdir()
    _orders(2000, seed=1).write_csv(d / "first.csv")          # csv: timestamps are text
    _orders(2000, seed=2).write_csv(d / "second.csv")         # another period, same world
    code, out = _drift(run_action, f"monitoring.reference={d}/first.csv", f"monitoring.current={d}/second.csv",
                       NO_MV, "features.label.column=returned", "features.entity=shop",
                       "features.timestamp=placed_at")
    skipped = out["skipped"]
    assert "identifier" in skipped["order_ref"] and "identifier" in skipped["line_no"]
    assert "features.timestamp" in skipped["placed_at"]             # parsed, and declared
    assert "features.label.column" in skipped["returned"] and "features.entity" in skipped["shop"]
    assert set(out["features"]) == {"basket", "region"}
    assert code == 0 and out["dataset_drift"] is False, out["headline"]


def test_a_csv_timestamp_is_parsed_and_orders_the_reference(run_action, tmp_path):
    d = tmp_path / "t"
    d.mkdir()
    _table(3000, seed=1).write_csv(d / "ref.csv")
    _table(3000, seed=2).write_csv(d / "cur.csv")
    code, out = _drift(run_action, f"monitoring.reference={d}/ref.csv", f"monitoring.current={d}/cur.csv", NO_MV)
    assert "Datetime" in out["skipped"]["reading_ts"] and code == 0
    assert out["calibration"]["order"] == "time order"


def test_all_null_side_takes_the_other_type_and_is_a_data_quality_alert(run_action, tmp_path):
    d = tmp_path / "n"
    d.mkdir()
    _table(3000, seed=1).write_csv(d / "ref.csv")
    _table(3000, seed=2).with_columns(pl.lit(None, pl.Float64).alias("humidity")).write_csv(d / "cur.csv")
    code, out = _drift(run_action, f"monitoring.reference={d}/ref.csv", f"monitoring.current={d}/cur.csv", NO_MV)
    assert out["features"]["humidity"]["type"] == "numeric"
    assert code == 3 and out["status"] == "fail"
    assert [q["feature"] for q in out["quality"]] == ["humidity"]
    assert "no valid value" in out["quality"][0]["issue"]


def test_every_type_mismatch_is_listed_with_a_fix_that_runs_as_typed(run_action, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    ref = _table(3000, seed=1)
    ref.write_parquet(d / "ref.parquet")
    cur = _table(3000, seed=2).with_columns(pl.col("temperature").round(1).cast(pl.String),
                                            pl.col("humidity").round(1).cast(pl.String))
    cur = cur.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("n/a"))
                           .otherwise(pl.col("temperature")).alias("temperature"))
    cur.write_parquet(d / "cur.parquet")
    args = [f"monitoring.reference={d}/ref.parquet", f"monitoring.current={d}/cur.parquet", NO_MV]
    code, out = _drift(run_action, *args, out="bad")
    assert code == 2
    message = out["error"]
    assert "'temperature' is numeric" in message and "'humidity' is numeric" in message
    fixes = [w for w in message.split() if w.startswith("+monitoring.column_types.")]
    assert fixes == ["+monitoring.column_types.temperature=numeric", "+monitoring.column_types.humidity=numeric"]
    code, out = _drift(run_action, *args, *fixes, out="fixed")
    assert code == 0 and out["features"]["temperature"]["cur_null_share"] == pytest.approx(1 / 3000)
