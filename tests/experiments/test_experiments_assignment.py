"""Assignment hashing: FNV-1a vectors, GrowthBook cross-SDK cases, vectorised == scalar."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as st

from mlops.errors import ExperimentError
from mlops.experiments import (
    ExperimentSpec,
    assign_many,
    assign_units,
    bucket,
    bucket_ranges,
    buckets_many,
    choose_variant,
    route,
)
from mlops.fnv import fnv1a32_utf16

ROOT = Path(__file__).resolve().parents[2]


def fnv_scratch(units: list[int]) -> int:
    """FNV-1a 32 written from the definition, independent of the module."""
    h = 2166136261
    for u in units:
        h ^= u
        h = (h * 16777619) % 2**32
    return h


def growthbook_v2(seed: str, value: str) -> float:
    first = fnv_scratch(list(seed.encode("ascii") + value.encode("ascii")))
    return (fnv_scratch(list(str(first).encode("ascii"))) % 10000) / 10000


def test_fnv1a32_known_vectors():
    assert fnv1a32_utf16("") == 0x811C9DC5
    assert fnv1a32_utf16("a") == 0xE40C292C
    assert fnv1a32_utf16("foobar") == 0xBF9CF968


@pytest.mark.parametrize("text", ["b", "hello world", "user-123456", "90850943850283058242805"])
def test_fnv1a32_matches_byte_loop(text):
    assert fnv1a32_utf16(text) == fnv_scratch(list(text.encode("utf-8")))


def test_fnv1a32_hand_worked_single_byte():
    # "a" = 0x61: (0x811c9dc5 ^ 0x61) * 0x01000193 mod 2**32 = 0x811c9da4 * 0x01000193 mod 2**32
    assert fnv1a32_utf16("a") == (0x811C9DA4 * 0x01000193) % 2**32


def test_non_ascii_hashes_utf16_code_units_like_growthbook_js():
    # GrowthBook's JS SDK XORs str.charCodeAt(i): UTF-16 code units (surrogate pairs for emoji).
    assert fnv1a32_utf16("é") == fnv_scratch([0xE9])
    assert fnv1a32_utf16("😀") == fnv_scratch([0xD83D, 0xDE00])
    assert fnv1a32_utf16("é") != fnv_scratch(list("é".encode("utf-8")))


# GrowthBook's published cross-SDK cases (cases.json "hash", version 2) and one bucket from
# its "creates experiments properly" feature case (seed "feature", anonId "123" -> 0.5231).
GROWTHBOOK_V2 = [
    ("seed", "a", 0.0505), ("seed", "b", 0.2696), ("foo", "ab", 0.2575), ("foo", "def", 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 0.124), ("90850943850283058242805", "123", 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 0.0128), ("feature", "123", 0.5231),
]


@pytest.mark.parametrize("seed,value,expected", GROWTHBOOK_V2)
def test_bucket_matches_growthbook_cross_sdk_cases(seed, value, expected):
    assert bucket(seed, value) == expected
    assert growthbook_v2(seed, value) == expected
    assert buckets_many(seed, [value])[0] == expected


# GrowthBook's getBucketRange cases with valid weights.
@pytest.mark.parametrize("weights,coverage,expected", [
    ([0.5, 0.5], 1, [(0, 0.5), (0.5, 1)]),
    ([0.25] * 4, 1, [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ([0.4, 0.6], 1, [(0, 0.4), (0.4, 1)]),
    ([0.2, 0.3, 0.5], 1, [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ([0.2, 0.3, 0.5], 0.2, [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ([0.5, 0.5], 0.5, [(0, 0.25), (0.5, 0.75)]),
    ([0.5, 0.5], 1.5, [(0, 0.5), (0.5, 1)]),
])
def test_bucket_ranges_match_growthbook(weights, coverage, expected):
    got = bucket_ranges(weights, coverage)
    assert len(got) == len(expected)
    for (a, b), (c, d) in zip(got, expected):
        assert a == pytest.approx(c, abs=1e-12) and b == pytest.approx(d, abs=1e-12)


def test_choose_variant_boundaries():
    ranges = bucket_ranges([0.4, 0.6])
    assert choose_variant(0.0, ranges) == 0
    assert choose_variant(0.3999, ranges) == 0
    assert choose_variant(0.4, ranges) == 1  # ranges are half-open [start, end)
    assert choose_variant(0.9999, ranges) == 1
    assert choose_variant(0.3, bucket_ranges([0.5, 0.5], 0.5)) is None


def test_assign_many_equals_scalar_including_odd_ids():
    ids = [f"user-{i}" for i in range(3000)] + ["", "é", "naïve-ユーザー", "😀x", "0", "4294967295"]
    weights = [0.2, 0.3, 0.5]
    ranges = bucket_ranges(weights)
    expected = np.array([choose_variant(bucket("exp-7", i), ranges) for i in ids])
    got = assign_many("exp-7", ids, weights)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(buckets_many("exp-7", ids), [bucket("exp-7", i) for i in ids])


def test_assign_many_series_in_series_out_and_int_ids():
    ints = list(range(500))
    series = pl.Series("uid", ints)
    out = assign_many("s", series, [0.5, 0.5])
    assert isinstance(out, pl.Series) and out.dtype == pl.Int32 and len(out) == 500
    assert out.to_list() == assign_many("s", [str(i) for i in ints], [0.5, 0.5]).tolist()
    assert bucket("s", 42) == bucket("s", "42")


def test_assignment_proportions_over_100k_ids():
    ids = [f"{i:08x}-visitor" for i in range(100_000)]
    weights = [0.2, 0.3, 0.5]
    idx = assign_many("proportions", ids, weights)
    counts = np.bincount(idx, minlength=3)
    assert counts.sum() == 100_000
    np.testing.assert_allclose(counts / 100_000, weights, atol=0.006)
    assert st.chisquare(counts, np.array(weights) * 100_000).pvalue > 1e-4


def test_buckets_are_uniform_over_10000_cells():
    b = buckets_many("uniform", [str(i) for i in range(50_000)])
    assert b.min() >= 0 and b.max() < 1
    hist = np.histogram(b, bins=20, range=(0, 1))[0]
    assert st.chisquare(hist).pvalue > 1e-4


def test_bucket_is_deterministic_across_processes():
    ids = ["alice", "bob", "é", "12345"]
    code = ("import sys, json; sys.path.insert(0, %r); from mlops.experiments import bucket; "
            "print(json.dumps([bucket('xp', i) for i in %r]))" % (str(ROOT), ids))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""})
    assert out.stdout.strip() == str([bucket("xp", i) for i in ids])


def test_bad_ids_and_seeds_are_refused():
    with pytest.raises(ExperimentError, match="unit id"):
        bucket("s", 1.5)
    with pytest.raises(ExperimentError, match="unit id"):
        bucket("s", True)
    with pytest.raises(ExperimentError, match="seed"):
        bucket(3, "a")
    with pytest.raises(ExperimentError, match="null"):
        assign_many("s", pl.Series(["a", None]), [0.5, 0.5])


def _spec(**kw) -> ExperimentSpec:
    return ExperimentSpec(key="router", variants=[
        {"name": "control", "model": "m@champion", "weight": 0.7},
        {"name": "shadow", "model": "m@shadow", "shadow": True},
        {"name": "treatment", "model": "m@challenger", "weight": 0.3}],
        primary_metric="ctr", **kw)


def test_route_serves_by_bucket_and_returns_shadows():
    spec = _spec()
    served_names = []
    for i in range(2000):
        served, shadows = route(spec, f"u{i}")
        assert [v.name for v in shadows] == ["shadow"]
        assert served.name != "shadow"
        expected = "control" if bucket("router", f"u{i}") < 0.7 else "treatment"
        assert served.name == expected
        served_names.append(served.name)
    assert served_names == assign_units(spec, [f"u{i}" for i in range(2000)])
    share = served_names.count("treatment") / 2000
    assert abs(share - 0.3) < 0.04


def test_route_refuses_empty_unit_ids():
    spec = _spec()
    with pytest.raises(ExperimentError, match="empty unit id"):
        route(spec, "")
    with pytest.raises(ExperimentError, match="empty unit id"):
        assign_units(spec, pl.Series(["a", ""]))
    assert route(spec, 7)[0] == route(spec, "7")[0]
