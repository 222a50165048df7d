"""Reference statistics, fitted once from training data and stored with the model.

Per numeric column: the sorted finite values (for KS and Wasserstein), the population std,
the bin edges and bin counts (for PSI/JS), and the null / non-finite counts. Per categorical
column: the count of every category. The reference saves to one ``.npz`` file (arrays plus
a JSON header, loaded with ``allow_pickle=False``) and summarises to a small JSON dict used
by reports; the serving circuit breaker bins with it too (PSI bins per feature and for the
score, :meth:`mlops.serving.breaker.bins.BreakerReference.from_reference`).

Exact by default: every finite value is kept sorted, so KS and Wasserstein equal scipy's on
the whole reference at any size (searchsorted on sorted arrays; 10M rows take about as long
to sort as to read). A sample only when declared: with ``max_rows``, a column with more
finite values keeps an evenly spaced subsample of its *sorted* values,
``sorted[round(linspace(0, n-1, max_rows))]`` (the minimum and maximum included). Its ECDF is
within ``1 / max_rows`` of the full one, so KS and Wasserstein change by at most about that
much; :attr:`NumericReference.subsampled` says so and drift reports name the features. The
KS p-value still uses the true row count. Edges, bin counts, std, min and max always come
from all the finite values.

Storage: when the rows in time order (below) hold every row (no thinning), they hold
exactly the sorted values in another order, so the ``.npz`` keeps them once (time order)
and the sorted values are sorted again on load: half the file (8 instead of 16 bytes per
value) for +0.06 s per 10M values (numpy's vectorised sort) -- measured against keeping
both arrays and against sorted values plus an int32 permutation (12 bytes per value,
slower to load than the sort).

Joint sample: per-column statistics lose how features relate, which the multivariate
(domain-classifier) test needs, so the reference also keeps ``sample_rows`` (5,000) whole rows
drawn at random (seeded) from the training data: numeric values as floats (null = NaN),
categorical values as strings with a null mask. References saved before this have none; the
multivariate test then says so.
"""
from __future__ import annotations

import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from mlops.constraints import Interval, validate
from mlops.errors import ConfigError, DataError
from mlops.filesystem import atomic_path
from mlops.monitoring import stats
from mlops.monitoring.columns import categorical_column, numeric_column, require_columns
from mlops.monitoring.reference_rows import Baseline, ReferenceRows, reference_rows

FORMAT = "mlops.monitoring.reference"
FORMAT_VERSION = 3           # 2 adds the rows in time order and the model's baseline rows;
                             # 3 stores sorted values once when the rows hold them all
READABLE_VERSIONS = (1, 2, 3)


@dataclass(frozen=True)
class NumericReference:
    """Fitted statistics of one numeric column (``valid`` = non-null finite values)."""

    rows: int
    nulls: int
    nonfinite: int
    valid: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    edges: np.ndarray
    counts: np.ndarray
    sorted_values: np.ndarray

    @property
    def subsampled(self) -> bool:
        return self.sorted_values.size < self.valid


@dataclass(frozen=True)
class CategoricalReference:
    """Fitted category counts of one categorical column (categories sorted as strings)."""

    rows: int
    nulls: int
    categories: tuple[str, ...]
    counts: np.ndarray

    @property
    def valid(self) -> int:
        return self.rows - self.nulls


@dataclass
class Reference:
    """Reference statistics per feature; build it with :func:`fit_reference`."""

    numeric: dict[str, NumericReference]
    categorical: dict[str, CategoricalReference]
    n_bins: int = 10
    max_rows: int | None = None          # None: every sorted value kept (exact)
    features: list[str] = field(default_factory=list)
    sample: dict[str, np.ndarray] = field(default_factory=dict)  # joint rows (see module doc)
    rows: ReferenceRows | None = None     # the rows in time order (calibrated thresholds)
    baseline: Baseline | None = None      # the model's out-of-sample scores and labels

    def sample_frame(self) -> pl.DataFrame | None:
        """The joint row sample as a frame (categorical nulls restored), or None."""
        if not self.sample:
            return None
        cols = {}
        for name in self.features:
            values = self.sample.get(name)
            if values is None:
                return None
            if name in self.categorical:
                cols[name] = pl.Series(name, values.tolist(), dtype=pl.String).set(
                    pl.Series(self.sample[f"{name}\0null"].tolist()), None)
            else:
                cols[name] = pl.Series(name, values, dtype=pl.Float64)
        return pl.DataFrame(cols)

    def __post_init__(self) -> None:
        if not self.features:
            self.features = [*self.numeric, *self.categorical]

    def rows_hold_sorted(self, name: str) -> bool:
        """True when the rows in time order hold exactly the sorted values of numeric feature
        ``name`` (no thinning, no subsample, no row left out), in another order."""
        ref = self.numeric[name]
        values = None if self.rows is None else self.rows.numeric.get(name)
        return (values is not None and self.rows.step == 1 and not ref.subsampled
                and int(np.count_nonzero(np.isfinite(values))) == ref.valid)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the reference to one ``.npz`` file (atomically) and return its path."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        header = {"format": FORMAT, "version": FORMAT_VERSION, "n_bins": self.n_bins,
                  "max_rows": self.max_rows, "features": self.features,
                  "numeric": {}, "categorical": {}}
        for i, (name, ref) in enumerate(self.numeric.items()):
            header["numeric"][name] = {"index": i, "rows": ref.rows, "nulls": ref.nulls,
                                       "nonfinite": ref.nonfinite, "valid": ref.valid,
                                       "mean": ref.mean, "std": ref.std,
                                       "min": ref.min, "max": ref.max}
            arrays[f"num{i}_edges"] = ref.edges
            arrays[f"num{i}_counts"] = ref.counts
            if self.rows_hold_sorted(name):  # sorted again on load (module doc: storage)
                header["numeric"][name]["sorted_from_rows"] = True
            else:
                arrays[f"num{i}_sorted"] = ref.sorted_values
        for j, (name, ref) in enumerate(self.categorical.items()):
            header["categorical"][name] = {"index": j, "rows": ref.rows, "nulls": ref.nulls,
                                           "categories": list(ref.categories)}
            arrays[f"cat{j}_counts"] = ref.counts
        if self.sample:
            header["sample"] = list(self.sample)
            for k, name in enumerate(self.sample):
                arrays[f"sample{k}"] = self.sample[name]
        if self.rows is not None:
            header["rows"], row_arrays = self.rows.arrays("rows_")
            arrays.update(row_arrays)
        if self.baseline is not None:
            header["baseline"] = True
            arrays.update(self.baseline.arrays())
        buffer = io.BytesIO()
        np.savez(buffer, header=np.array(json.dumps(header)), **arrays)
        with atomic_path(path) as tmp:  # whole or not at all; a full disk names the path
            tmp.write_bytes(buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Reference:
        """Read a reference written by :meth:`save` (no pickle is ever loaded)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no reference file at {str(path)!r}", key="reference",
                            fix="fit the reference (fit_reference(...).save(path)) first")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{str(path)!r} is not a readable reference file ({exc})",
                            key="reference", fix="refit and save the reference") from exc
        if header.get("format") != FORMAT or header.get("version") not in READABLE_VERSIONS:
            raise DataError(f"{str(path)!r} has format {header.get('format')!r} version "
                            f"{header.get('version')!r}; expected {FORMAT!r} version "
                            f"{' or '.join(map(str, READABLE_VERSIONS))}",
                            key="reference", fix="refit and save the reference")
        rows = ReferenceRows.from_arrays(header["rows"], arrays, "rows_") if "rows" in header else None
        numeric = {}
        for name, h in header["numeric"].items():
            i = h["index"]
            if h.get("sorted_from_rows"):  # NaN (null, non-finite) sorts last
                sorted_values = np.sort(rows.numeric[name])[:h["valid"]]
            else:
                sorted_values = arrays[f"num{i}_sorted"]
            numeric[name] = NumericReference(
                rows=h["rows"], nulls=h["nulls"], nonfinite=h["nonfinite"], valid=h["valid"],
                mean=h["mean"], std=h["std"], min=h["min"], max=h["max"],
                edges=arrays[f"num{i}_edges"], counts=arrays[f"num{i}_counts"],
                sorted_values=sorted_values)
        categorical = {
            name: CategoricalReference(rows=h["rows"], nulls=h["nulls"],
                                       categories=tuple(h["categories"]),
                                       counts=arrays[f"cat{h['index']}_counts"])
            for name, h in header["categorical"].items()}
        sample = {name: arrays[f"sample{k}"] for k, name in enumerate(header.get("sample", []))}
        baseline = Baseline.from_arrays(arrays) if header.get("baseline") else None
        return cls(numeric=numeric, categorical=categorical, n_bins=header["n_bins"],
                   max_rows=header["max_rows"], features=list(header["features"]), sample=sample,
                   rows=rows, baseline=baseline)

    def summary(self) -> dict:
        """Small JSON-safe description: per feature its bins (edges or categories), counts,
        shares and row counts. This is what reports read.

        Numeric entries: ``type, rows, nulls, nonfinite, valid, mean, std, min, max,
        edges, counts, shares``; categorical entries: ``type, rows, nulls, valid,
        categories, counts, shares`` (shares are ``None`` when there is no valid value).
        """
        features: dict[str, dict] = {}
        for name, ref in self.numeric.items():
            ref_shares = stats.shares(ref.counts)
            features[name] = {
                "type": "numeric", "rows": ref.rows, "nulls": ref.nulls,
                "nonfinite": ref.nonfinite, "valid": ref.valid, "mean": ref.mean,
                "std": ref.std, "min": ref.min, "max": ref.max,
                "edges": ref.edges.tolist(), "counts": ref.counts.tolist(),
                "shares": None if ref_shares is None else ref_shares.tolist()}
        for name, ref in self.categorical.items():
            ref_shares = stats.shares(ref.counts)
            features[name] = {
                "type": "categorical", "rows": ref.rows, "nulls": ref.nulls,
                "valid": ref.valid, "categories": list(ref.categories),
                "counts": ref.counts.tolist(),
                "shares": None if ref_shares is None else ref_shares.tolist()}
        return {"n_bins": self.n_bins, "max_rows": self.max_rows,
                "features": {name: features[name] for name in self.features}}


def reference_values_info(reference: Reference) -> dict:
    """Whether KS and Wasserstein used every reference value (exact) or a declared sample.

    >>> ref = fit_reference(pl.DataFrame({"x": [float(i) for i in range(1000)]}), numeric=["x"],
    ...                     categorical=[], max_rows=100)
    >>> info = reference_values_info(ref)
    >>> info["exact"], info["sampled"]
    (False, {'x': {'kept': 100, 'valid': 1000}})
    """
    sampled = {name: (ref.sorted_values.size, ref.valid) for name, ref in reference.numeric.items()
               if ref.subsampled}
    if not sampled:
        return {"exact": True, "max_rows": reference.max_rows, "sampled": {},
                "note": "KS and Wasserstein on every reference value (exact)"
                        if reference.numeric else "no numeric feature"}
    which = ", ".join(f"{name} ({kept:,} of {valid:,})" for name, (kept, valid) in sampled.items())
    return {"exact": False, "max_rows": reference.max_rows,
            "sampled": {name: {"kept": kept, "valid": valid} for name, (kept, valid) in sampled.items()},
            "note": f"KS and Wasserstein on an evenly spaced sample of the sorted reference values "
                    f"(at most {reference.max_rows:,} per feature, declared): {which}; within "
                    f"1 / {reference.max_rows:,} of the exact ECDF. Bins, PSI and JS use every value"}


def fit_reference(df: pl.DataFrame, *, numeric: list[str], categorical: list[str],
                  n_bins: int = 10, max_rows: int | None = None,
                  sample_rows: int = 5_000, seed: int = 0, timestamp: str | None = None,
                  keep_rows: bool = True) -> Reference:
    """Fit reference statistics once from training data.

    ``max_rows=None`` (the default) keeps every sorted value: KS and Wasserstein are exact
    at any size; a number declares a sample (module doc). The rows are also kept in time
    order (by ``timestamp``; file order without one) for calibrated thresholds, thinned to
    ``max_rows``; ``keep_rows=False`` skips them.

    >>> ref = fit_reference(pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", None]}),
    ...                     numeric=["x"], categorical=["c"], n_bins=2)
    >>> ref.numeric["x"].edges.tolist(), ref.categorical["c"].categories
    ([2.5], ('a', 'b'))
    """
    numeric, categorical = list(numeric), list(categorical)
    _validate_fit_args(numeric, categorical, n_bins, max_rows)
    require_columns(df, numeric + categorical, what="reference data")
    with ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8, max(len(numeric), 1))) as pool:
        # numpy's sorts release the GIL: one column per thread
        fitted = pool.map(lambda name: _fit_numeric(df.get_column(name), n_bins, max_rows), numeric)
        numeric_refs = dict(zip(numeric, fitted))
    categorical_refs = {name: _fit_categorical(df.get_column(name)) for name in categorical}
    rows = None
    if keep_rows:
        if timestamp is not None:
            require_columns(df, [timestamp], what="reference data")
        rows = reference_rows(df, numeric=numeric, timestamp=timestamp, max_rows=max_rows,
                              categorical={n: r.categories for n, r in categorical_refs.items()})
    return Reference(numeric=numeric_refs, categorical=categorical_refs, n_bins=n_bins,
                     max_rows=max_rows, features=numeric + categorical,
                     sample=_joint_sample(df, numeric, categorical, sample_rows, seed), rows=rows)


def _joint_sample(df: pl.DataFrame, numeric: list[str], categorical: list[str], rows: int,
                  seed: int) -> dict[str, np.ndarray]:
    if rows <= 0 or df.height == 0:
        return {}
    if df.height > rows:
        idx = np.sort(np.random.default_rng(seed).choice(df.height, size=rows, replace=False))
        df = df[idx]
    out: dict[str, np.ndarray] = {}
    for name in numeric:
        out[name] = df.get_column(name).cast(pl.Float64).fill_null(float("nan")).to_numpy()
    for name in categorical:
        s = df.get_column(name).cast(pl.String)
        out[name] = np.asarray(s.fill_null("").to_list(), dtype=str)
        out[f"{name}\0null"] = s.is_null().to_numpy()
    return out


def _fit_numeric(series: pl.Series, n_bins: int, max_rows: int | None) -> NumericReference:
    col = numeric_column(series)
    values = col.sorted_values
    edges = stats.numeric_edges(values, n_bins)
    counts = stats.bin_counts(values, edges, is_sorted=True)
    kept = values
    if max_rows is not None and values.size > max_rows:
        kept = values[np.round(np.linspace(0, values.size - 1, max_rows)).astype(np.int64)]
    has = values.size > 0
    return NumericReference(
        rows=col.rows, nulls=col.nulls, nonfinite=col.nonfinite, valid=int(values.size),
        mean=float(values.mean()) if has else None, std=float(values.std()) if has else None,
        min=float(values[0]) if has else None, max=float(values[-1]) if has else None,
        edges=edges, counts=counts, sorted_values=np.ascontiguousarray(kept))


def _fit_categorical(series: pl.Series) -> CategoricalReference:
    col = categorical_column(series)
    counted = col.values.rename("value").value_counts(name="n").sort("value")
    return CategoricalReference(rows=col.rows, nulls=col.nulls,
                                categories=tuple(counted["value"].to_list()),
                                counts=counted["n"].to_numpy().astype(np.int64))


def _validate_fit_args(numeric: list[str], categorical: list[str], n_bins: object,
                       max_rows: object) -> None:
    if not numeric and not categorical:
        raise ConfigError("at least one numeric or categorical column is needed; got none",
                          key="features", fix="list the feature columns to monitor")
    for key, names in (("numeric", numeric), ("categorical", categorical)):
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise ConfigError(f"The '{key}' parameter must be a list of column names; got {bad!r}",
                              key=key)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"The '{key}' columns must be unique; got {dupes} more than once",
                              key=key, fix="list each column once")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ConfigError(f"columns {both} are listed as both numeric and categorical",
                          key="categorical", fix="list each column under one type only")
    validate(dict(n_bins=n_bins, max_rows=max_rows),
             {"n_bins": [Interval(int, 2, None)], "max_rows": [Interval(int, 2, None), None]})
