"""Drift history: append-safe under concurrent writers, read back per series (issue 14.4)."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import stat

from mlops.monitoring import history
from mlops.reports.views.monitor import history_view

FEATURES = {f"f{i}": {"test": "wasserstein", "threshold": 0.1, "score": 0.01 * i,
                      "status": "no_drift", "ref_rows": 1000, "cur_rows": 900} for i in range(30)}


def _record(series: str, i: int, *, alerted=False) -> dict:
    drift = {"features": FEATURES, "dataset_status": "no_drift", "drift_share": 0.0,
             "n_drifted": 0, "n_features": 30, "cur_rows": 900}
    return history.run_record(drift, series=series, kind="monitor", run_id=f"{series}-{i}",
                              run_dir=f"/runs/{i}", time=f"2026-01-01T00:{i % 60:02d}:00+00:00",
                              window={"start": "2025-12-01", "end": f"2025-12-{1 + i % 28:02d}"},
                              alerted=alerted,
                              performance={"realized": [{"start": f"2025-12-{1 + i % 28:02d}",
                                                         "value": 0.9 - 0.001 * i}]})


def _writer(path: str, series: str, n: int) -> None:
    for i in range(n):
        history.append(path, _record(series, i))


def test_concurrent_appends_lose_and_tear_nothing(tmp_path):
    path = str(tmp_path / "h" / "history.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, f"s{k}", 60)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    lines = open(path).read().splitlines()
    assert len(lines) == 240 and all(json.loads(x)["features"]["f29"]["score"] for x in lines)
    for k in range(4):
        records, bad = history.read(path, series=f"s{k}")
        assert bad == 0 and sorted(r["run_id"] for r in records) == sorted(f"s{k}-{i}" for i in range(60))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # paths.home files are private


def test_read_keeps_the_last_runs_by_window_end_and_skips_torn_lines(tmp_path):
    path = tmp_path / "history.jsonl"
    for i in (3, 1, 2):
        history.append(path, _record("a", i))
    history.append(path, _record("b", 9))
    with open(path, "a") as fh:
        fh.write('{"series": "a", "at": "2025-12-3')  # a crash mid-line
    records, bad = history.read(path, series="a", last=2)
    assert bad == 1 and [r["window"]["end"] for r in records] == ["2025-12-03", "2025-12-04"]
    assert records[0]["at"] == "2025-12-03"  # placed at its window end, not its run time


def test_history_view_draws_thresholds_alerts_and_performance(tmp_path):
    path = tmp_path / "history.jsonl"
    for i in range(5):
        history.append(path, _record("a", i, alerted=(i == 3)))
    records, _ = history.read(path, series="a")
    view = history_view(records, max_panels=4, drift_share=0.5, performance_label="roc_auc")
    svg = str(view["trends"])
    assert view["runs"] == 5 and view["alerts"] == 1
    assert svg.count("<g transform=") == 5  # dataset panel + 4 features (max_panels)
    assert 'stroke-dasharray="5 3"' in svg  # the threshold line
    assert "alert" in svg and "roc_auc" in str(view["performance"])
    assert history.performance_points(records)["realized"][0] == ("2025-12-01", 0.9)


def test_small_multiples_doctest():
    import doctest

    import mlops.reports.small_multiples as module
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
