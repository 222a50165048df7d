"""A fleet's prediction log: replica ids, one directory per replica, one reader of them all.

"Each record once" (mlops/serving/prediction_log/fleet.py): a record is one row a server
committed to its journal, known by its segment and its row there; the same row met twice
in one scan (a segment and its compacted part both on disk, a replica directory copied in
twice) counts once, while two answered predictions that share a request id (a client's
retry, an experiment's shadow row) count twice.
"""
from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone

import polars as pl
import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.errors import ConfigError
from mlops.serving import create_app
from mlops.serving.prediction_log import (
    BASE_SCHEMA,
    PredictionLog,
    count_log_files,
    default_replica_id,
    feature_schema,
    journal,
    replica_dirs,
    scan_prediction_log,
)
from mlops.serving.settings import ServingSettings, StoreSettings
from mlops.serving.state import open_state


def _frame(plan, ids: list[str]) -> pl.DataFrame:
    schema = {**BASE_SCHEMA, "features": feature_schema(plan)}
    given = {"request_id": ids, "probability": [0.5] * len(ids),
             "served_at": [datetime.now(timezone.utc)] * len(ids)}
    return pl.DataFrame(given).select([(pl.col(c) if c in given else pl.lit(None)).cast(t).alias(c)
                                       for c, t in schema.items()])


def _write(directory, plan, ids: list[str], *, compact: bool = True) -> None:
    """One server's log in ``directory``: ``ids`` durable, compacted into parquet or left
    in the journal (as a kill -9 leaves it: a segment nobody compacted)."""
    if not compact:
        _write_segment(directory / "journal", f"{time.time_ns()}-dead-000001", _frame(plan, ids))
        return
    log = PredictionLog(directory, plan, flush_records=10**6, flush_seconds=3600)
    log.append_frame(_frame(plan, ids)).result(timeout=10)
    log.close()


def _ids(log_dir) -> list[str]:
    return sorted(scan_prediction_log(log_dir).collect()["request_id"].to_list())


def test_default_replica_ids_differ_by_host_and_port_and_are_stable():
    a, b = default_replica_id(8081, host="node-a"), default_replica_id(8082, host="node-a")
    c = default_replica_id(8081, host="node-b")
    assert len({a, b, c}) == 3 and a == default_replica_id(8081, host="node-a")
    assert default_replica_id(8081, host="node a/../x") == "node-a-..-x-8081"  # one directory name
    assert ServingSettings(port=9000, replica_id="blue-1").replica() == "blue-1"  # explicit wins
    assert ServingSettings(port=9000).replica() == default_replica_id(9000)


@pytest.mark.parametrize("bad", ["../up", "a/b", "journal", "quarantine", ".hidden", ""])
def test_a_replica_id_that_is_no_plain_directory_name_is_a_config_error(bad):
    with pytest.raises(ConfigError) as err:
        ServingSettings(replica_id=bad).validate()
    assert err.value.key == "serving.replica_id"


def test_every_replica_and_the_single_replica_layout_are_read_each_record_once(world, tmp_path):
    root = tmp_path / "predictions"
    _write(root, world.plan, ["old-1", "old-2"])                       # before the upgrade
    _write(root / "node-a-8081", world.plan, ["a1", "a2", "a3"])        # compacted
    _write(root / "node-a-8082", world.plan, ["b1"], compact=False)     # killed: journal only
    _write(root / "node-b-8081", world.plan, ["c1", "c1"])              # a retry: two answers
    assert [r for r, _ in replica_dirs(root)] == [None, "node-a-8081", "node-a-8082", "node-b-8081"]
    log = scan_prediction_log(root).collect()
    assert sorted(log["request_id"]) == ["a1", "a2", "a3", "b1", "c1", "c1", "old-1", "old-2"]
    by_replica = dict(log.group_by("replica").len().iter_rows())
    assert by_replica == {None: 2, "node-a-8081": 3, "node-a-8082": 1, "node-b-8081": 2}
    assert count_log_files(root) == 4  # three parts and one journal segment
    assert scan_prediction_log(tmp_path / "nothing") is None


def test_a_record_met_twice_in_one_scan_counts_once(world, tmp_path):
    root = tmp_path / "predictions"
    _write(root / "r1", world.plan, ["x1", "x2"], compact=False)
    (seg,) = (root / "r1" / "journal").glob("*.wal")
    stem = seg.name[:-len(journal.SUFFIX)]
    # a compactor killed between writing the part and deleting the segment: both on disk
    journal_rows = journal.read_segment(seg)
    journal_rows.write_parquet(root / "r1" / journal.part_name(stem))
    assert _ids(root) == ["x1", "x2"]
    # the part alone (the segment gone), copied in under a second replica name
    seg.unlink()
    shutil.copytree(root / "r1", root / "r1-copy")
    assert _ids(root) == ["x1", "x2"]
    # one copy holds the segment as read mid-write (its first record), the other the
    # whole part: the same records, the longer source counts
    (root / "r1" / journal.part_name(stem)).unlink()
    _write_segment(root / "r1" / "journal", stem, journal_rows.head(1))
    assert _ids(root) == ["x1", "x2"]
    log = scan_prediction_log(root).collect()
    assert log["replica"].to_list() == ["r1-copy", "r1-copy"]


def _write_segment(directory, stem: str, frame: pl.DataFrame) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    seg = journal.Segment.create(directory, stem)
    seg.append(frame)
    seg.sync()
    seg.close()


def test_a_server_journals_under_its_replica_and_says_so(world, tmp_path):
    settings = ServingSettings(port=8123, log_dir=str(tmp_path / "predictions"),
                               store=StoreSettings(path=str(tmp_path / "s.sqlite")))
    state = open_state(world.plan, world.model, world.info, settings,
                       source_schema=world.events.schema)
    replica = default_replica_id(8123)
    with TestClient(create_app(state)) as client:
        rec = dict(record(world.events.row(-1, named=True), world.plan), request_id="q1")
        assert client.post("/predict", json={"records": [rec]}).status_code == 200
        ready, meta = client.get("/ready").json(), client.get("/metadata").json()
    assert ready["replica"] == meta["replica"] == replica
    assert ready["checks"]["prediction_log"]["directory"] == str(tmp_path / "predictions" / replica)
    log = scan_prediction_log(tmp_path / "predictions").collect()
    assert log.select("request_id", "replica").rows() == [("q1", replica)]
