"""The before/after serving benchmark's harness (issue 21's latency Must-show): the requested
events never count as loaded history, request bodies carry what the server validates, an
abstained answer is not scored, and the ratios point the documented way. No timings."""
from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_serving_before as bsb  # noqa: E402


def _events() -> pl.DataFrame:
    t0 = datetime(2026, 1, 1)
    times = [t0 + timedelta(minutes=m) for m in (5, 1, 3, 3, 9, 7)]  # unsorted, one tie
    return pl.DataFrame({"user_id": ["a", "b", "a", "c", "b", "a"], "event_ts": times,
                         "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                         "transaction_id": [f"t{i}" for i in range(6)]})


def test_the_requests_are_the_latest_events_and_the_history_strictly_precedes_them():
    ev = _events()
    requested, first = bsb.split_requests(ev, "event_ts", 3)
    # latest 3 by time: minutes 5, 7, 9 (by hand)
    assert first == datetime(2026, 1, 1, 0, 5)
    assert sorted(requested["transaction_id"]) == ["t0", "t4", "t5"]
    history = ev.filter(pl.col("event_ts") < first)
    assert history.height + requested.height == ev.height
    # a tie at the boundary goes to the requests, never to both sides
    requested, first = bsb.split_requests(ev, "event_ts", 4)
    assert first == datetime(2026, 1, 1, 0, 3)
    assert sorted(requested["transaction_id"]) == ["t0", "t2", "t3", "t4", "t5"]


def test_a_body_is_one_record_with_source_columns_event_id_and_an_iso_time():
    ev = _events()
    bodies = bsb.request_bodies(ev.head(2), ["user_id", "event_ts", "amount"], "event_ts")
    assert len(bodies) == 2
    rec = json.loads(bodies[0])
    assert rec == {"records": [{"user_id": "a", "event_ts": "2026-01-01T00:05:00", "amount": 1.0,
                                "transaction_id": "t0"}]}


def test_the_events_end_before_today_so_no_request_is_in_the_future(tmp_path):
    path = bsb.write_events(tmp_path, n_users=20, days=10, today=date(2026, 3, 1))
    ts = pl.read_parquet(path)["event_ts"]
    assert ts.max() < datetime(2026, 3, 1) and ts.min() >= datetime(2026, 2, 18)


def test_an_abstained_answer_has_no_probability_and_ratios_read_ours_over_before():
    assert bsb.scored({"probabilities": [None], "decisions": ["abstain"]}) == [None]
    assert bsb.scored({"probabilities": [0.25]}) == [0.25]
    r = bsb.ratios({"rps": 400.0, "p50_ms": 2.0, "p99_ms": 10.0},
                   {"rps": 500.0, "p50_ms": 1.0, "p99_ms": 12.0})
    assert r == pytest.approx({"throughput": 1.25, "p50": 0.5, "p99": 1.2})


def test_a_load_with_any_non_2xx_answer_or_socket_error_fails_the_run():
    ok = {"2xx": 10, "4xx": 0, "5xx": 0, "errors": 0}
    bsb.check_answers("ours", ok)
    for bad in ({**ok, "5xx": 1}, {**ok, "4xx": 2}, {**ok, "errors": 1}, {**ok, "2xx": None}):
        with pytest.raises(RuntimeError, match="ours"):
            bsb.check_answers("ours", bad)
