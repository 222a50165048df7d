"""The benchmark harness (issue 24.1): processes are timed and measured from outside, the
table is generated from measured rows, and a peer whose values differ fails the run."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_drift  # noqa: E402
import drift_peers  # noqa: E402
import run_all  # noqa: E402
from measure import Row, run_process  # noqa: E402


def test_a_whole_process_is_timed_and_its_peak_memory_measured():
    code = "import time, numpy as np; a = np.ones(40_000_000); time.sleep(0.3)"  # 320 MB
    m = run_process([sys.executable, "-c", code]).check("child")
    assert m.seconds >= 0.3 and m.peak_mb >= 300 and m.returncode == 0
    small = run_process([sys.executable, "-c", "print('hi')"]).check("child")
    assert small.peak_mb < m.peak_mb - 250 and small.stdout.strip() == "hi"
    with pytest.raises(RuntimeError, match="exited 3"):
        run_process([sys.executable, "-c", "raise SystemExit(3)"]).check("child")


def test_the_table_is_generated_between_the_markers_only(tmp_path):
    rows = [Row(benchmark="drift 1M", peer="scipy loop", ours_s=2.0, peer_s=5.0, timer="whole process",
                ours_peak_mb=100, peer_peak_mb=80, values="KS", load=[1.0, 3.5]).to_dict()]
    body = run_all.table(rows, [{"name": "drift", "returncode": 0}], quick=False)
    assert "| drift 1M | scipy loop | whole process | 2 s | 5 s | **2.50x** | 100 / 80 | KS | 1.0-3.5 |" in body
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\nintro\n{run_all.BEGIN}\nold\n{run_all.END}\n"
                      "see [Alarms on real data](docs/concepts/monitoring.md#alarms)\n"
                      "\n## Scaling\nkeep\n")
    assert run_all.replace_block(readme, body)
    text = readme.read_text()
    assert "old" not in text and "**2.50x**" in text and text.endswith("## Scaling\nkeep\n")
    doc = tmp_path / "benchmarks.md"
    run_all.copy_performance_section(readme, doc)
    copied = doc.read_text()
    assert copied.startswith("# Benchmarks") and "**2.50x**" in copied and "Scaling" not in copied
    assert "[Alarms on real data](concepts/monitoring.md#alarms)" in copied  # relative to docs/
    failed = run_all.table([], [{"name": "features", "returncode": 1}], quick=True)
    assert "Failed in this run** (no rows): features" in failed


def test_the_scipy_peer_agrees_with_ours_and_a_wrong_value_fails(tmp_path):
    from mlops.monitoring.drift import DriftPolicy, detect_drift
    from mlops.monitoring.reference import fit_reference
    ref, cur, _ = bench_drift.make_data(3000, 3, seed=1)
    ref.write_parquet(tmp_path / "r.parquet")
    cur.write_parquet(tmp_path / "c.parquet")
    theirs = drift_peers.scipy_loop(str(tmp_path / "r.parquet"), str(tmp_path / "c.parquet"), 10)["features"]
    ours = detect_drift(fit_reference(ref, numeric=ref.columns, categorical=[]), cur, DriftPolicy())["features"]
    assert "1e-9" in bench_drift.check_scipy(ours, theirs)
    theirs["f01"]["wasserstein"] *= 1 + 1e-6
    with pytest.raises(AssertionError):
        bench_drift.check_scipy(ours, theirs)


def test_duckdb_frames_say_the_same_half_open_window():
    sql = {frame: __import__("feature_peers").duckdb_sql("t", "set2", frame) for frame in ("1us", "exclude")}
    assert "INTERVAL 1 MICROSECOND PRECEDING" in sql["1us"] and "EXCLUDE GROUP" in sql["exclude"]
    assert "count(DISTINCT item)" in sql["1us"]


def test_make_data_shifts_every_third_column():
    ref, cur, shifted = bench_drift.make_data(1000, 6, seed=0, ref_rows=2000)
    assert ref.height == 2000 and cur.height == 1000 and shifted == ["f00", "f03"]
    assert isinstance(ref, pl.DataFrame) and np.isfinite(ref.to_numpy()).all()
