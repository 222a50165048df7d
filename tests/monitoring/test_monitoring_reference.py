"""Reference fitting, persistence and summary."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from mlops.errors import ConfigError, DataError
from mlops.monitoring.reference import Reference, fit_reference


@pytest.fixture()
def train() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    x[:10] = np.nan
    x[10:13] = np.inf
    return pl.DataFrame({
        "x": pl.Series(x).scatter([20, 21], None),
        "n": rng.integers(0, 100, 2000),
        "c": rng.choice(["b", "a", "c"], 2000, p=[0.5, 0.3, 0.2]).tolist(),
        "flag": rng.integers(0, 2, 2000).astype(bool),
    })


def test_fit_numeric_counts_and_statistics(train):
    ref = fit_reference(train, numeric=["x", "n"], categorical=["c", "flag"], n_bins=10)
    x = ref.numeric["x"]
    finite = train["x"].drop_nulls().to_numpy()
    finite = np.sort(finite[np.isfinite(finite)])
    assert (x.rows, x.nulls, x.nonfinite, x.valid) == (2000, 2, 13, 2000 - 2 - 13)
    np.testing.assert_array_equal(x.sorted_values, finite)
    assert x.std == pytest.approx(np.std(finite))  # population std, ddof=0
    np.testing.assert_array_equal(x.edges, np.unique(np.quantile(finite, np.arange(1, 10) / 10)))
    assert x.counts.sum() == x.valid
    assert ref.features == ["x", "n", "c", "flag"]


def test_fit_categorical_counts_as_strings(train):
    ref = fit_reference(train, numeric=[], categorical=["c", "flag"])
    c = ref.categorical["c"]
    assert c.categories == ("a", "b", "c")
    counts = train["c"].value_counts()
    assert dict(zip(c.categories, c.counts.tolist())) == dict(zip(counts["c"], counts["count"]))
    assert ref.categorical["flag"].categories == ("false", "true")


def test_subsample_is_evenly_spaced_sorted_and_keeps_exact_bins():
    rng = np.random.default_rng(1)
    values = rng.normal(size=10_001)
    ref = fit_reference(pl.DataFrame({"x": values}), numeric=["x"], categorical=[], max_rows=101)
    x = ref.numeric["x"]
    full = np.sort(values)
    assert x.subsampled and x.valid == 10_001 and x.sorted_values.size == 101
    np.testing.assert_array_equal(x.sorted_values, full[::100])  # linspace(0, 10000, 101)
    assert x.counts.sum() == 10_001  # bins from every value, not the subsample
    assert x.std == pytest.approx(np.std(values))


def test_save_load_round_trip(tmp_path, train):
    ref = fit_reference(train, numeric=["x", "n"], categorical=["c", "flag"], n_bins=7, max_rows=500)
    path = ref.save(tmp_path / "sub" / "reference.npz")
    back = Reference.load(path)
    assert back.features == ref.features and back.n_bins == 7 and back.max_rows == 500
    for name, num in ref.numeric.items():
        other = back.numeric[name]
        for field in ("rows", "nulls", "nonfinite", "valid", "mean", "std", "min", "max"):
            assert getattr(other, field) == getattr(num, field)
        for field in ("edges", "counts", "sorted_values"):
            np.testing.assert_array_equal(getattr(other, field), getattr(num, field))
    for name, cat in ref.categorical.items():
        assert back.categorical[name].categories == cat.categories
        np.testing.assert_array_equal(back.categorical[name].counts, cat.counts)
    assert back.summary() == ref.summary()


def test_saved_file_loads_without_pickle(tmp_path, train):
    path = fit_reference(train, numeric=["x"], categorical=["c"]).save(tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as data:
        assert "header" in data.files


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="no reference file"):
        Reference.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable reference"):
        Reference.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(DataError, match="expected 'mlops.monitoring.reference'"):
        Reference.load(other)


def test_summary_is_small_json(train):
    summary = fit_reference(train, numeric=["x"], categorical=["c"]).summary()
    text = json.dumps(summary, allow_nan=False)
    assert len(text) < 3000
    x = summary["features"]["x"]
    assert x["type"] == "numeric" and len(x["shares"]) == len(x["edges"]) + 1
    assert sum(x["shares"]) == pytest.approx(1.0)
    c = summary["features"]["c"]
    assert c["categories"] == ["a", "b", "c"] and sum(c["counts"]) == 2000


def test_all_null_and_empty_columns_fit_without_crashing():
    df = pl.DataFrame({"x": pl.Series([None, None], dtype=pl.Float64), "c": [None, None]},
                      schema={"x": pl.Float64, "c": pl.String})
    ref = fit_reference(df, numeric=["x"], categorical=["c"])
    assert ref.numeric["x"].valid == 0 and ref.numeric["x"].edges.size == 0
    assert ref.numeric["x"].std is None
    assert ref.categorical["c"].categories == ()
    json.dumps(ref.summary(), allow_nan=False)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"numeric": ["amout"], "categorical": []}, DataError, "did you mean 'amount'"),
    ({"numeric": ["c"], "categorical": []}, DataError, "must have a numeric dtype"),
    ({"numeric": [], "categorical": []}, ConfigError, "at least one"),
    ({"numeric": ["amount"], "categorical": ["amount"]}, ConfigError, "both numeric and categorical"),
    ({"numeric": ["amount", "amount"], "categorical": []}, ConfigError, "unique"),
    ({"numeric": ["amount"], "categorical": [], "n_bins": 1}, ConfigError, "n_bins"),
    ({"numeric": ["amount"], "categorical": [], "max_rows": 0}, ConfigError, "max_rows"),
])
def test_fit_errors_name_the_problem(kwargs, error, match):
    df = pl.DataFrame({"amount": [1.0, 2.0], "c": ["a", "b"]})
    with pytest.raises(error, match=match):
        fit_reference(df, **kwargs)
