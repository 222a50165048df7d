"""The labelled table as an engine function (frames + plan in, no config), on hand-worked data."""
from __future__ import annotations

from datetime import datetime as D

import polars as pl
import pytest

from mlops.errors import ConfigError, DataError
from mlops.features.compile import compile_plan
from mlops.training.table import feature_table

EVENTS = pl.DataFrame({"eid": [1, 2, 3, 4], "ent": ["a", "a", "b", "a"],
                       "ts": [D(2024, 1, 1, 10), D(2024, 1, 1, 12), D(2024, 1, 1, 11), D(2024, 1, 2, 9)],
                       "x": [1.0, 2.0, 4.0, 8.0]})
SPEC = {"name": "t", "entity": "ent", "timestamp": "ts", "label": {"column": "y"},
        "windows": [{"column": "x", "aggs": ["count", "sum"], "periods": ["1d"]}]}
PLAN = compile_plan(SPEC, EVENTS.with_columns(pl.lit(0).alias("y")).schema)


def test_entity_label_spine_sees_only_events_strictly_before_each_label():
    spine = pl.DataFrame({"ent": ["a", "a", "b"], "ts": [D(2024, 1, 1, 12), D(2024, 1, 2, 10), D(2024, 1, 3)],
                          "y": [0, 1, 0]})
    out = feature_table(PLAN, EVENTS.lazy(), labels=(spine.lazy(), "entity"))
    # by hand, window [t - 1d, t): a@01-01 12:00 sees only 10:00 (the 12:00 tie is excluded);
    # a@01-02 10:00 sees 10:00 (on the edge), 12:00 and 09:00; b@01-03 sees nothing
    assert out["events_count_1d"].to_list() == [1, 3, 0]
    assert out["x_sum_1d"].to_list() == [1.0, 11.0, 0.0]
    assert out["y"].to_list() == [0, 1, 0]


def test_labels_joined_by_event_id_equal_labels_in_the_events():
    labelled = EVENTS.with_columns(pl.Series("y", [0, 1, 0, 1]))
    in_events = feature_table(PLAN, labelled.lazy(), event_id="eid")
    table = labelled.select("eid", "y").reverse()  # order must not matter
    joined = feature_table(PLAN, EVENTS.lazy(), labels=(table.lazy(), "event_id"), event_id="eid")
    assert joined.select(in_events.columns).equals(in_events)
    assert in_events.sort("eid")["events_count_1d"].to_list() == [0, 1, 0, 2]


def test_errors_name_the_key():
    with pytest.raises(DataError, match="features.label.column"):
        feature_table(PLAN, EVENTS.lazy())  # no label column anywhere
    with pytest.raises(ConfigError, match="data.event_id"):
        feature_table(PLAN, EVENTS.lazy(), labels=(EVENTS.lazy(), "event_id"))
    unlabelled = compile_plan({**SPEC, "label": {}}, EVENTS.schema)
    with pytest.raises(ConfigError, match="features.label.column"):
        feature_table(unlabelled, EVENTS.lazy())


def test_under_the_reject_rule_training_drops_what_the_engine_calls_unscorable_or_no_event():
    """Hand-worked: a's rows 0-2 are fine, row 3 repeats row 2 exactly (the identical rule:
    no event), row 4 has an inf input (no event, unscorable); c holds 1e308 twice, so the
    window of its third row sums past the float range (an event, unscorable). The missing
    rule keeps every row."""
    x = [1.0, 2.0, 8.0, 8.0, float("inf"), 4.0, 1e308, 1e308, 1.0]
    ts = [D(2024, 1, 1, 10), D(2024, 1, 1, 12), D(2024, 1, 2, 9), D(2024, 1, 2, 9),
          D(2024, 1, 2, 10), D(2024, 1, 1, 11), D(2024, 1, 3, 1), D(2024, 1, 3, 2), D(2024, 1, 3, 3)]
    events = pl.DataFrame({"ent": ["a"] * 5 + ["b"] + ["c"] * 3, "ts": ts, "x": x,
                           "y": [0, 1, 1, 1, 0, 0, 1, 0, 1]})
    from mlops.training.table import labelled_table
    reject = compile_plan({**SPEC, "rules": {"nonfinite": "reject"}}, events.schema)
    out = labelled_table(reject, events.lazy())
    assert (out.unscorable, out.duplicates) == (2, 1)
    assert out.frame.height == 6 and "__status" not in out.frame.columns
    # windows [t - 1d, t): a: 0, 1, 1 + 2; b: 0; c: 0, 1e308
    assert sorted(out.frame["x_sum_1d"].to_list()) == [0.0, 0.0, 0.0, 1.0, 3.0, 1e308]
    kept = labelled_table(compile_plan(SPEC, events.schema), events.lazy())
    assert kept.frame.height == 9 and (kept.unscorable, kept.duplicates) == (0, 0)
