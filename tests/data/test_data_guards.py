"""The user's data is checked before work starts: one-line errors naming what is wrong."""
from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from mlops.data.checks import dedupe, feature_warnings, require_days, require_rows
from mlops.data.files import scan_files
from mlops.data.labels import check_labels_by_entity, join_by_event_id
from mlops.errors import DataError


def test_duplicate_event_ids_are_counted_and_exact_copies_can_be_dropped():
    df = pl.DataFrame({"id": ["a", "b", "b", "c", "c"], "x": [1.0, 2.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError, match=r"2 duplicate event id.*1 rows are exact copies"):
        dedupe(df, event_id="id", allow=False)
    with pytest.raises(DataError, match=r"1 duplicate event id") as err:  # c differs: still refused
        dedupe(df, event_id="id", allow=True)
    assert err.value.key == "data.event_id"
    ok = dedupe(df.filter(pl.col("x") != 4.0), event_id="id", allow=True)
    assert ok["id"].to_list() == ["a", "b", "c"]


def test_too_few_days_says_how_many_there_are_and_are_needed():
    with pytest.raises(DataError, match=r"spans 21 days .* needs 90 days"):
        require_days(datetime(2024, 1, 1), datetime(2024, 1, 21), needed_days=90, parts="x")
    require_days(datetime(2024, 1, 1), datetime(2024, 4, 1), needed_days=90, parts="x")
    with pytest.raises(DataError, match="has no rows"):
        require_rows(pl.DataFrame({"x": []}), what="the event data")


def test_null_and_constant_features_are_warnings():
    df = pl.DataFrame({"a": [None, None, None], "b": [2.0, 2.0, None], "c": [1.0, 2.0, 3.0]},
                      schema={"a": pl.Float64, "b": pl.Float64, "c": pl.Float64})
    w = feature_warnings(df, ["a", "b", "c"])
    assert w == ['feature "a" is null on every training row',
                 'feature "b" is constant on the training rows']


def test_mixed_time_zones_across_files_name_the_files(tmp_path):
    naive = pl.DataFrame({"ts": [datetime(2024, 1, 1)], "x": [1.0]})
    naive.write_parquet(tmp_path / "a.parquet")
    naive.with_columns(pl.col("ts").dt.replace_time_zone("UTC")).write_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"mixes naive and time-zoned.*(UTC: b\.parquet; naive: a\.parquet)"):
        scan_files(str(tmp_path / "*.parquet"), timestamp_cols=("ts",))
    (tmp_path / "c.csv").write_text("ts,x\n2024-01-01T00:00:00,1\n")
    (tmp_path / "d.csv").write_text("ts,x\n2024-01-01T00:00:00+02:00,1\n")
    with pytest.raises(DataError, match=r"c\.csv.*|d\.csv"):
        scan_files(str(tmp_path / "*.csv"), timestamp_cols=("ts",))


def test_a_malformed_file_is_named(tmp_path):
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "good.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"cannot read .*broken\.parquet"):
        scan_files(str(tmp_path / "*.parquet"))


def test_labels_join_by_event_id_and_refuse_two_labels_per_id():
    ev = pl.LazyFrame({"id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    lab = pl.LazyFrame({"id": ["c", "a"], "y": [1, 0], "known": [datetime(2024, 2, 1)] * 2})
    out = join_by_event_id(ev, lab, event_id="id", label="y", known_at="known").collect()
    assert out["y"].to_list() == [0, None, 1]
    twice = pl.LazyFrame({"id": ["a", "a"], "y": [1, 0]})
    with pytest.raises(DataError, match="more than one label row"):
        join_by_event_id(ev, twice, event_id="id", label="y").collect()
    with pytest.raises(DataError, match=r"lacks column\(s\) \['y'\]"):
        check_labels_by_entity(pl.LazyFrame({"u": ["a"], "t": [datetime(2024, 1, 1)]}),
                               entity="u", timestamp="t", label="y", known_at=None)
