"""A damaged prediction-log journal: flipped bytes, a zeroed block, a truncated segment,
both schema records hit. Recovery keeps every intact record before and after the
damage (the truth: the records whose bytes were not touched), moves the damaged bytes
to quarantine, counts the loss, and never deletes a segment holding a record it could
not read."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fault_tools import log_row, tiny_plan

from mlops.serving.prediction_log import PredictionLog, journal, scan_prediction_log

N = 200
STEM = "0001-crashed-000001"


@pytest.fixture(scope="module")
def plan():
    return tiny_plan()


def _schema(plan, tmp_path: Path) -> dict:
    log = PredictionLog(tmp_path / "proto", plan)
    log.close()
    return log.schema


def crashed_segment(plan, tmp_path: Path) -> tuple[Path, list[tuple[str, int, int]]]:
    """A segment as a server killed with -9 leaves it: the schema records, then one rows
    record per acknowledged request (each fsynced). Returns its path and, per request,
    (request id, first byte, end byte) of its record: the truth damage is judged by."""
    log_dir = tmp_path / "plog"
    schema = _schema(plan, tmp_path)
    seg = journal.Segment.create(log_dir / "journal", STEM, schema)
    spans = []
    for i in range(N):
        start = seg.bytes
        seg.append_rows(json.dumps([log_row(i, schema)]).encode(), 1)
        seg.sync()
        spans.append((f"r{i:04d}", start, seg.bytes))
    seg.close()  # the lock goes with the process
    return seg.path, spans


def _untouched(spans, hits: list[range]) -> list[str]:
    return [rid for rid, a, b in spans if not any(h.start < b and a < h.stop for h in hits)]


def _hit(path: Path, hits: list[range], how: str = "flip") -> None:
    data = bytearray(path.read_bytes())
    for h in hits:
        for k in h:
            data[k] = 0 if how == "zero" else data[k] ^ 0x5A
    path.write_bytes(bytes(data))


def test_one_flipped_byte_loses_that_record_only(plan, tmp_path):
    path, spans = crashed_segment(plan, tmp_path)
    original = path.read_bytes()
    rng = random.Random(1)
    for _ in range(40):
        pos = rng.randrange(spans[0][1], len(original))  # anywhere after the schema records
        path.write_bytes(original)
        _hit(path, [range(pos, pos + 1)])
        kept = journal.read_segment(path)["request_id"].to_list()
        assert kept == _untouched(spans, [range(pos, pos + 1)]) and len(kept) == N - 1, pos


def test_random_damage_keeps_exactly_the_untouched_records(plan, tmp_path):
    path, spans = crashed_segment(plan, tmp_path)
    original = path.read_bytes()
    rng = random.Random(2)
    for trial in range(30):
        hits = []
        for _ in range(rng.randint(1, 5)):
            start = rng.randrange(spans[0][1], len(original) - 1)
            hits.append(range(start, min(len(original), start + rng.choice([1, 3, 40, 700]))))
        path.write_bytes(original)
        _hit(path, hits, how=rng.choice(["flip", "zero"]))
        changed = [range(k, k + 1) for k, (a, b) in enumerate(zip(original, path.read_bytes())) if a != b]
        frame = journal.read_segment(path)
        kept = frame["request_id"].to_list() if frame is not None else []
        assert kept == _untouched(spans, changed), (trial, hits)


def test_recovery_after_kill_keeps_every_good_record_and_quarantines_the_damage(plan, tmp_path, caplog):
    path, spans = crashed_segment(plan, tmp_path)
    middle = (spans[100][1] + spans[100][2]) // 2
    _hit(path, [range(middle, middle + 1)])  # the probe: one byte in the middle of the .wal
    damaged = path.read_bytes()[spans[100][1]:spans[100][2]]
    log = PredictionLog(tmp_path / "plog", plan)  # the next server's start
    log.close()
    ids = scan_prediction_log(tmp_path / "plog").collect()["request_id"].to_list()
    assert sorted(ids) == _untouched(spans, [range(middle, middle + 1)]) and len(ids) == N - 1
    assert not path.exists()  # every intact record is in parquet, the damage in quarantine
    quarantine = tmp_path / "plog" / "quarantine"
    assert (quarantine / f"{STEM}.bad").read_bytes() == damaged
    index = json.loads((quarantine / f"{STEM}.json").read_text())
    assert index["spans"] == [{"offset": spans[100][1], "length": len(damaged), "kind": "damaged"}]
    assert (log.recovered.rows, log.damage.damaged_regions, log.damage.damaged_bytes) == (N - 1, 1, len(damaged))
    assert any("1 damaged region" in r.getMessage() and f"{N - 1} record(s) kept" in r.getMessage()
               for r in caplog.records)


def test_a_truncated_segment_keeps_every_complete_record(plan, tmp_path):
    path, spans = crashed_segment(plan, tmp_path)
    cut = (spans[150][1] + spans[150][2]) // 2  # killed in the middle of writing record 150
    path.write_bytes(path.read_bytes()[:cut])
    log = PredictionLog(tmp_path / "plog", plan)
    log.close()
    ids = scan_prediction_log(tmp_path / "plog").collect()["request_id"].to_list()
    assert sorted(ids) == [rid for rid, _, b in spans if b <= cut]
    assert log.damage.damaged_regions == 0 and log.damage.torn_bytes == cut - spans[150][1]


def test_a_segment_whose_schema_records_are_both_damaged_is_never_deleted(plan, tmp_path):
    from mlops.serving.prediction_log.compaction import compact
    path, spans = crashed_segment(plan, tmp_path)
    first_rows = spans[0][1]
    _hit(path, [range(30, 31), range(first_rows - 30, first_rows - 29)])  # both schema copies
    damaged = path.read_bytes()
    done = compact(path, tmp_path / "plog")  # nobody says which schema the rows have
    kept = tmp_path / "plog" / "quarantine" / path.name
    assert not path.exists() and kept.read_bytes() == damaged and done.kept_whole == 1
    # the log itself knows its schema: its recovery reads every row
    kept.rename(path)
    log = PredictionLog(tmp_path / "plog", plan)
    log.close()
    assert sorted(scan_prediction_log(tmp_path / "plog").collect()["request_id"].to_list()) == \
        [rid for rid, _, _ in spans]


def _records_of(data: bytes) -> list[tuple[list[str], int, int]]:
    """Walk an intact segment header by header: (request ids, first byte, end byte) of each
    rows record (the truth the damage is judged by, independent of the reader under test)."""
    import struct
    out, pos = [], 0
    while pos + 16 <= len(data):
        magic, _, length = struct.unpack_from("<4sIQ", data, pos)
        end = pos + 16 + length
        if magic == b"MLJR":
            out.append(([row[0] for row in json.loads(data[pos + 16:end])], pos, end))
        pos = end
    assert pos == len(data)
    return out


@pytest.mark.slow
def test_a_server_killed_then_damaged_restarts_with_every_other_record_and_says_so(tmp_path):
    """The issue's probe end to end: 200 acknowledged predictions, kill -9, one byte flipped
    in the middle of the .wal, restart: 199 kept, the loss in /ready, /metrics and the log."""
    import signal

    import httpx
    from fault_tools import request_records, start_server, stop_server
    records = request_records(N)
    proc, base = start_server(tmp_path, {"log_flush_records": 100_000})
    acked = []
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for i, rec in enumerate(records):
                answer = client.post("/predict", json={"records": [dict(rec, request_id=f"q{i:04d}")]})
                assert answer.status_code == 200, answer.text
                acked += answer.json()["request_ids"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    (wal,) = (tmp_path / "plog" / "server" / "journal").glob("*.wal")
    written = _records_of(wal.read_bytes())
    assert sorted(i for ids, _, _ in written for i in ids) == sorted(acked) and len(acked) == N
    middle = wal.stat().st_size // 2
    _hit(wal, [range(middle, middle + 1)])
    lost = [i for ids, a, b in written if a <= middle < b for i in ids]
    proc, base = start_server(tmp_path, {"log_flush_records": 100_000})
    try:
        ready = httpx.get(f"{base}/ready", timeout=10).json()["checks"]["prediction_log"]
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        stop_server(proc)
    assert ready["recovered"]["rows_kept"] == N - len(lost) and ready["recovered"]["damaged_regions"] == 1
    assert ready["damage"]["damaged_regions"] == 1 and ready["damage"]["quarantined"]
    assert "mlops_prediction_log_damaged_regions 1.0" in metrics
    assert f"mlops_prediction_log_recovered_records {float(N - len(lost))}" in metrics
    logged = scan_prediction_log(tmp_path / "plog").collect()["request_id"].to_list()
    assert sorted(logged) == sorted(set(acked) - set(lost)) and len(lost) == 1
    assert "1 damaged region" in (tmp_path / "server.stderr").read_text()
