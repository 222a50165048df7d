"""The alarm benchmark's own logic: shift injection, windows, scoring, the project folder.

Hand-worked cases; no peers, no training.
"""
from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from alarms_data import DATASETS, STORMS, next_start  # noqa: E402
from alarms_project import features_yaml, shifted_events, write_project  # noqa: E402
from alarms_report import dataset_table, score_dataset  # noqa: E402
from alarms_shift import (  # noqa: E402
    first_alarm,
    score,
    shift_inputs,
    shift_labels,
    targets,
    unshifted,
)

T = [datetime(2020, 1, d) for d in (1, 2, 3, 4)]


def frame() -> pl.DataFrame:
    return pl.DataFrame({"t": T, "x": [1.0, 2.0, None, 4.0], "seg": [0.0, 5.0, 5.0, 5.0],
                         "y": [10.0, 20.0, 30.0, 40.0], "c": [0, 1, 0, 1]})


def test_inputs_move_by_reference_sds_from_the_shift_on_only():
    out = shift_inputs(frame(), at=T[2], timestamp="t", shifts={"x": 0.5}, reference_sd={"x": 4.0})
    assert out["x"].to_list() == [1.0, 2.0, None, 6.0]          # null stays null
    assert out["y"].to_list() == frame()["y"].to_list()         # labels untouched


def test_regression_labels_scale_from_the_shift_on_and_inputs_stay():
    out = shift_labels(frame(), at=T[1], timestamp="t", label="y", spec={"scale": 1.5},
                       reference=frame())
    assert out["y"].to_list() == [10.0, 30.0, 45.0, 60.0]
    assert out["x"].to_list() == frame()["x"].to_list()


def test_binary_labels_flip_in_the_segment_after_the_shift_with_the_seeded_draws():
    n = 2000
    df = pl.DataFrame({"t": [datetime(2020, 1, 1 + i // 100) for i in range(n)],
                       "seg": np.arange(n) % 10 * 1.0, "c": (np.arange(n) % 3 == 0).astype(np.int8)})
    ref = pl.DataFrame({"seg": [0.0, 4.0, 9.0]})                 # median 4
    at = datetime(2020, 1, 11)
    out = shift_labels(df, at=at, timestamp="t", label="c", spec={"flip": 0.3, "segment": "seg"},
                       reference=ref, seed=3)
    draw = np.random.default_rng(3).random(n) < 0.3
    after = (df["t"] >= at).to_numpy()
    expect = np.where(after & (df["seg"].to_numpy() > 4) & draw, 1 - df["c"].to_numpy(), df["c"].to_numpy())
    assert out["c"].to_list() == expect.tolist()
    assert out["c"].dtype == pl.Int8
    changed = out["c"].to_numpy() != df["c"].to_numpy()
    assert not changed[~after].any() and changed.any()


def test_both_shifts_in_a_project_change_inputs_and_labels_after_the_date_only():
    events = STORMS.load()
    at = datetime(2013, 1, 1)
    out = shifted_events(STORMS, events, "both", at)
    before = events["observed_at"] < at
    assert out.filter(before).equals(events.filter(before))
    after = out.filter(~before)
    orig = events.filter(~before)
    assert np.allclose(after["wind"].to_numpy(), orig["wind"].to_numpy() * 1.15)
    assert (after["pressure"] > orig["pressure"]).all()
    assert after["long"].equals(orig["long"])


def test_unshifted_windows_follow_what_each_judgment_watches():
    assert unshifted("data_drift", "none", 5, 2) == [0, 1, 2, 3, 4]
    assert unshifted("data_drift", "inputs", 5, 2) == [0, 1]
    assert unshifted("data_drift", "labels", 5, 2) == [0, 1, 2, 3, 4]   # inputs never move there
    assert unshifted("concept_drift", "labels", 5, 2) == [0, 1]
    assert unshifted("concept_drift", "inputs", 5, 2) == [0, 1]          # after it: not scored
    assert unshifted("breaker", "labels", 5, 2) == [0, 1, 2, 3, 4]


def test_score_counts_false_alarms_over_unshifted_windows_and_the_delay_after_the_shift():
    calls = {"none": [False, True, False, None, False],
             "inputs": [True, False, False, False, True],
             "labels": [False, False, True, True, True]}
    s = score("data_drift", calls, shift_index=2)
    # none: 4 decided, 1 alarm; inputs before 2: 2 decided, 1 alarm; labels: 5 decided, 3 alarms
    assert (s.false_alarms, s.opportunities, s.undecided) == (5, 11, 1)
    assert s.delay == 2                                   # inputs: first alarm 2 windows after
    assert (s.hits, s.shifted) == (1, 3)
    c = score("concept_drift", calls, shift_index=2)
    assert (c.false_alarms, c.opportunities) == (2, 8)    # none 1/4, inputs 1/2, labels 0/2
    assert c.delay == 0                                   # labels fire in the first shifted window
    assert (c.hits, c.shifted) == (3, 3)
    assert first_alarm([False, False], 0) is None


def test_an_alarm_the_unshifted_run_also_raises_is_no_detection():
    """Window 2 alarms with and without the shift (a natural event): the delay starts at
    window 3, the first alarm only the shifted run raises."""
    calls = {"none": [False, False, True, False, False],
             "inputs": [False, False, True, True, True],
             "labels": [False] * 5}
    s = score("data_drift", calls, shift_index=2)
    assert s.delay == 1 and (s.hits, s.shifted, s.unshifted_hits) == (3, 3, 1)
    assert s.false_alarms == 1                        # the none run's alarm is a false one
    never = score("breaker", {"none": [False, True, False], "inputs": [False, True, False],
                              "labels": [False] * 3}, shift_index=1)
    assert never.delay is None and never.hits == 1    # the only hit is the natural one


def test_targets_need_fewer_false_alarms_than_each_peer_at_no_longer_delay():
    ours = score("data_drift", {"none": [False] * 20, "inputs": [False] * 10 + [True] * 10}, 10)
    assert ours.false_alarm_rate == 0 and ours.delay == 0
    noisy = score("data_drift", {"none": [True] * 20, "inputs": [True] * 20}, 10)
    slow_quiet = score("data_drift", {"none": [False] * 20, "inputs": [False] * 20}, 10)
    assert targets(ours, [noisy]) == {"false_alarms_at_most_5pct": True,
                                      "detected_within_2_windows": True, "beats_both_peers": True}
    assert targets(ours, [noisy, slow_quiet])["beats_both_peers"] is False   # not fewer than 0
    assert targets(noisy, [])["false_alarms_at_most_5pct"] is False
    assert targets(noisy, [])["beats_both_peers"] is None


def test_report_scores_and_tables_every_side_and_marks_a_skipped_peer():
    result = {"task": "regression", "model": "m v1", "shift_at": "2013-01-01", "shift_index": 1,
              "windows": [["a", "b"]] * 3,
              "scenarios": {s: {"ours": {"data_drift": [False, True, True], "concept_drift": [False, False, True],
                                         "detectors": [True, True, True], "breaker": [None, None, None]},
                                "nannyml": {"data_drift": [True, True, True], "concept_drift": [False, True, True]},
                                "evidently": {"skipped": "not installed"}}
                            for s in ("none", "inputs", "labels")}}
    result.update(score_dataset(result))
    assert result["scores"]["breaker"]["ours"] is None            # no verdict at all
    assert result["scores"]["data_drift"]["evidently"] is None
    assert result["scores"]["data_drift"]["ours"]["false_alarms"] == 2 + 0 + 2
    table = dataset_table("storms", result)
    # every shifted alarm also fires in the unshifted run: no detection on either side
    assert ("| data drift | 57% (4/7) | never (2/2 shifted; 2 unshifted) | 100% (7/7) | "
            "never (2/2 shifted; 2 unshifted) | n/a | n/a |") in table


def test_windows_are_consecutive_calendar_periods_after_the_test_period():
    s = DATASETS["storms"].window_starts()
    assert s[0] == datetime(2003, 1, 1) and s[-1] == datetime(2022, 1, 1) and len(s) == 20
    w = DATASETS["flights"].window_starts()
    assert all((b - a).days == 7 for a, b in zip(w, w[1:])) and w[0].weekday() == 0
    assert datetime.fromisoformat(DATASETS["flights"].shift_at) in w
    assert next_start(datetime(2012, 1, 1), "year") == datetime(2013, 1, 1)
    with pytest.raises(ValueError):
        next_start(datetime(2012, 1, 1), "month")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_project_folder_composes_and_compiles_against_its_data(tmp_path, name):
    """The written folder is a project ``mlops`` composes: its spec compiles on its csv."""
    from alarms_ours import in_project
    from hydra import compose, initialize_config_dir

    from mlops.config.validate import feature_spec, typed_config
    from mlops.features.compile import compile_plan
    from mlops.project import searchpath
    ds = DATASETS[name]
    write_project(tmp_path, ds)
    before = list(searchpath._PROJECT_DIRS)
    with in_project(tmp_path), initialize_config_dir(config_dir=str(searchpath.BUILTIN_CONF),
                                                     version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"paths.output_dir={tmp_path / 'out'}"])
    assert searchpath._PROJECT_DIRS == before      # no project left on other tests' search path
    typed = typed_config(cfg)
    assert typed.data.path == f"data/{name}.csv" and typed.model.name == f"{name}_{ds.task}"
    events = pl.read_csv(tmp_path / "data" / f"{name}.csv", n_rows=200, try_parse_dates=True)
    plan = compile_plan(feature_spec(typed.features), dict(events.schema))
    assert set(ds.raw) <= set(plan.feature_names)
    assert f"entity: {ds.entity}" in features_yaml(ds)
    # the breaker compares with what the data set declares, written into the project's YAML
    assert typed.serving.breaker.reference == ds.breaker_reference
    assert f"breaker: {{reference: {ds.breaker_reference}}}" in (tmp_path / "conf" / "project.yaml").read_text()


def test_peer_rows_are_tagged_reference_perf_reference_or_their_window():
    from bench_alarms import peer_rows
    ds = DATASETS["storms"]   # train 1975-07-01, valid 1995, test 1999, windows from 2003
    times = [datetime(1975, 1, 1), datetime(1980, 5, 1), datetime(1996, 1, 1), datetime(2002, 12, 31),
             datetime(2003, 6, 1), datetime(2004, 1, 1), datetime(2005, 1, 1)]
    rows = pl.DataFrame({"t": times, "x": range(7)})
    windows = [(datetime(2003, 1, 1), datetime(2004, 1, 1)), (datetime(2004, 1, 1), datetime(2005, 1, 1))]
    out = peer_rows(ds, rows, "t", windows)
    # before training starts and after the last window: no part, dropped
    assert out["x"].to_list() == [1, 2, 3, 4, 5]
    assert out["__part"].to_list() == ["reference", "perf_reference", "perf_reference", "analysis", "analysis"]
    assert out["__window"].to_list() == [-1, -1, -1, 0, 1]


def test_our_adapters_read_alarm_quiet_or_no_verdict_from_the_reports():
    from alarms_ours import concept_drift, data_drift, detectors, trips_in_window
    monitor = {"dataset_status": "drift", "data_drift": True,
               "performance": {"chunks": [{"flag": False}], "concept_drift": False},
               "detectors": {"page_hinkley": {"first_detection": None}, "adwin": {"first_detection": 7}}}
    assert (data_drift(monitor), concept_drift(monitor), detectors(monitor)) == (True, False, True)
    quiet = {"dataset_status": "insufficient_data", "data_drift": False,
             "performance": {"chunks": [], "concept_drift": False}, "detectors": {}}
    assert (data_drift(quiet), concept_drift(quiet), detectors(quiet)) == (None, None, None)
    # the breaker: only a trip inside the window counts; one in the warm-up is the previous window's
    lo = datetime(2013, 1, 1)
    assert trips_in_window([], lo) == {"breaker": False, "trips": [], "tripped_in_warm_up": False}
    late = trips_in_window([{"time": "2013-06-01 00:00:00"}], lo)
    early = trips_in_window([{"time": "2012-12-31 18:00:00"}], lo)
    assert (late["breaker"], late["tripped_in_warm_up"]) == (True, False)
    assert (early["breaker"], early["tripped_in_warm_up"]) == (False, True)
