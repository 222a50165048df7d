"""Rows in (entity, time) order without a string sort (``backends/entity_order.py``), and
features computed in the input's order (``compute_features(input_order=True)``, what
``sink_features`` writes).

Truth: polars' own ``sort([entity, ts], maintain_order=True)`` for the permutation; for
the features, the sorted ``compute_features`` output put back in input order, and
``compute_at`` at the same rows (which applies the duplicates rule by hashing every row,
where ``compute_features`` compares only rows tied on entity and time), on every
generated spec of the backend-equality property (all aggregates, rules, duplicates,
ties, rows out of time order, hostile values).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops.errors import FeatureSpecError
from mlops.features.backends import frame_windows, window_arrays
from mlops.features.backends.entity_order import RowOrder, entity_time_order
from mlops.features.compile import compile_plan
from mlops.features.offline import compute_at, compute_features, sink_features

from .backend_cases import SCHEMA, frame, histories, specs


def _frame(n: int, entities: int, *, sorted_ts: bool, nulls: bool, seed: int = 0,
           as_int: bool = False) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ent = rng.integers(0, entities, n)
    ts = np.sort(rng.integers(0, 50, n)) if sorted_ts else rng.integers(0, 50, n)  # many ties
    df = pl.DataFrame({"e": ent if as_int else ent.astype(str), "t": ts, "i": np.arange(n)})
    if nulls:
        df = df.with_columns(pl.when(pl.col("i") % 7 == 0).then(None).otherwise(pl.col("e")).alias("e"),
                             pl.when(pl.col("i") % 11 == 0).then(None).otherwise(pl.col("t")).alias("t"))
    return df


@pytest.mark.parametrize("sorted_ts", [True, False])
@pytest.mark.parametrize("nulls", [True, False])
@pytest.mark.parametrize("as_int", [True, False])
def test_order_equals_polars_sort(sorted_ts, nulls, as_int):
    df = _frame(5000, 300, sorted_ts=sorted_ts, nulls=nulls, as_int=as_int)
    perm = entity_time_order(df["e"], df["t"])
    assert df[perm].equals(df.sort(["e", "t"], maintain_order=True))


def test_order_of_more_entities_than_one_radix_pass_holds():
    """Above 65,536 entities the radix sort takes two 16-bit passes."""
    df = _frame(300_000, 100_000, sorted_ts=True, nulls=False, seed=2)
    assert df[entity_time_order(df["e"], df["t"])].equals(df.sort(["e", "t"], maintain_order=True))


def test_order_of_datetimes_and_an_empty_frame():
    df = _frame(2000, 40, sorted_ts=False, nulls=True).with_columns(
        (pl.datetime(2024, 1, 1) + pl.duration(seconds=pl.col("t"))).alias("t"))
    assert df[entity_time_order(df["e"], df["t"])].equals(df.sort(["e", "t"], maintain_order=True))
    assert entity_time_order(df["e"][:0], df["t"][:0]).tolist() == []


def test_entity_blocks_cut_only_between_entities():
    run = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    assert window_arrays.entity_blocks(run, 3) == [(0, 3), (3, 9), (9, 10)]
    assert window_arrays.entity_blocks(np.zeros(10, dtype=np.int64), 3) == [(0, 10)]
    assert window_arrays.entity_blocks(np.zeros(0, dtype=np.int64), 3) == []


def test_row_order_numbers_entities():
    df = pl.DataFrame({"e": ["b", "a", "b", None, "a"], "t": [3, 2, 1, 5, 2]})
    rows = RowOrder.of(df["e"], df["t"])
    # sorted: None@5, a@2 (row 1), a@2 (row 4), b@1, b@3
    assert rows.perm.tolist() == [3, 1, 4, 2, 0]
    assert rows.run.tolist() == [0, 1, 1, 2, 2]


def _input_order_case(spec: dict, rows: list[dict]) -> None:
    df = frame(rows).with_row_index("rid")
    try:
        plan = compile_plan(spec, {**SCHEMA, "rid": pl.UInt32})
    except FeatureSpecError:
        return  # a spec polars rejects: nothing to compare
    try:
        truth = compute_features(plan, df, keep=["rid"]).collect().sort("rid")
    except pl.exceptions.PolarsError:
        return  # an expression polars refuses on these dtypes (either order)
    mine = compute_features(plan, df, keep=["rid"], input_order=True).collect()
    assert mine["rid"].to_list() == list(range(df.height))
    assert mine.equals(truth, null_equal=True)
    # compute_at applies the duplicates rule by hashing every row (compute_features only
    # compares rows tied on entity and time): the same features at the same rows
    at = compute_at(plan, df, df).collect()
    assert mine.select(plan.feature_names).equals(at.select(plan.feature_names), null_equal=True)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs(), histories())
def test_input_order_features_equal_sorted_features(spec, rows):
    _input_order_case(spec, rows)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs(), histories(), st.integers(1, 9))
def test_blocks_of_whole_entities_give_the_features_of_one_block(spec, rows, block):
    """The windows run over blocks of whole entities (``frame_windows.BLOCK`` rows):
    tiny blocks (many cuts, entities bigger than a block) change nothing."""
    df = frame(rows).with_row_index("rid")
    try:
        plan = compile_plan(spec, {**SCHEMA, "rid": pl.UInt32})
        whole = compute_features(plan, df, keep=["rid"], event_flag=True).collect()
    except (FeatureSpecError, pl.exceptions.PolarsError):
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(frame_windows, "BLOCK", block)
        cut = compute_features(plan, df, keep=["rid"], event_flag=True).collect()
    assert cut.equals(whole, null_equal=True)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(1, 400))
def test_sink_writes_the_input_order(tmp_path_factory, n):
    rng = np.random.default_rng(n)
    df = pl.DataFrame({"user": rng.integers(0, 9, n).astype(str),
                       "ts": (np.datetime64("2024-01-01") + rng.integers(0, 3600 * 30, n)
                              .astype("timedelta64[s]")).astype("datetime64[us]"),
                       "x": rng.random(n), "rid": np.arange(n)})
    spec = {"name": "s", "entity": "user", "timestamp": "ts",
            "windows": [{"column": "x", "aggs": ["sum", "max"], "periods": ["1h", "1d"]}]}
    plan = compile_plan(spec, df.schema)
    out = tmp_path_factory.mktemp("sink") / "f.parquet"
    sink_features(plan, df, out, keep=["rid"])
    got = pl.read_parquet(out)
    assert got["rid"].to_list() == list(range(n))
    assert got.equals(compute_features(plan, df, keep=["rid"]).collect().sort("rid"))
