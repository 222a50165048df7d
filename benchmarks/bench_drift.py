"""Drift detection speed: mlops.monitoring vs a per-column scipy loop, on the same data.

    python benchmarks/bench_drift.py                   # 1M reference x 1M current x 20 columns
    python benchmarks/bench_drift.py --rows 100000 --cols 5

(a) mlops: ``fit_reference`` (sorts each reference column once) + ``detect_drift`` (PSI, JS,
    KS statistic and p-value, normed Wasserstein for every column).
(b) baseline: for every column ``scipy.stats.ks_2samp`` + ``scipy.stats.wasserstein_distance``
    + ``numpy.histogram`` PSI/JS on numpy-quantile bins.
Both compute the same statistics; the script asserts they agree (so the speed-up is honest)
and prints seconds and ratios. By default the reference keeps every sorted value
(``--max-rows`` = rows), i.e. no subsampling, so the KS statistics must be equal.
(c) multivariate: the domain classifier (mlops.monitoring.multivariate) with the default
    monitoring config (5,000 rows sampled per side, 3 folds, 500 label shuffles), timed
    against (a) on the same data: its cost does not grow with the data, only the sampling does.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import scipy.stats
from scipy.spatial.distance import jensenshannon

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops.monitoring.drift import DriftPolicy, detect_drift  # noqa: E402
from mlops.monitoring.multivariate import domain_classifier  # noqa: E402
from mlops.monitoring.reference import fit_reference  # noqa: E402


def make_data(rows: int, cols: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Seeded frames: normal, lognormal and uniform columns; every third column shifted."""
    rng = np.random.default_rng(seed)
    ref, cur, shifted = {}, {}, []
    for i in range(cols):
        name = f"f{i:02d}"
        shift = 0.05 * (1 + i % 4) if i % 3 == 0 else 0.0
        if i % 3 == 1:
            ref[name], cur[name] = rng.lognormal(size=rows), rng.lognormal(shift, size=rows)
        elif i % 3 == 2:
            ref[name], cur[name] = rng.uniform(size=rows), rng.uniform(shift, 1 + shift, size=rows)
        else:
            ref[name], cur[name] = rng.normal(size=rows), rng.normal(shift, size=rows)
        if shift:
            shifted.append(name)
    return pl.DataFrame(ref), pl.DataFrame(cur), shifted


def baseline(ref: pl.DataFrame, cur: pl.DataFrame, n_bins: int, progress: bool) -> dict:
    """The per-column scipy/numpy loop a user would write."""
    out = {}
    for i, name in enumerate(ref.columns, start=1):
        r, c = ref[name].to_numpy(), cur[name].to_numpy()
        ks = scipy.stats.ks_2samp(r, c)
        wasserstein = scipy.stats.wasserstein_distance(r, c) / max(float(np.std(r)), 1e-3)
        edges = np.unique(np.quantile(r, np.arange(1, n_bins) / n_bins))
        bins = np.r_[-np.inf, edges, np.inf]
        rs = np.histogram(r, bins)[0] / r.size
        cs = np.histogram(c, bins)[0] / c.size
        fr, fc = np.maximum(rs, 1e-4), np.maximum(cs, 1e-4)
        out[name] = {"ks_stat": float(ks.statistic), "ks_pvalue": float(ks.pvalue),
                     "wasserstein": wasserstein, "psi": float(np.sum((fc - fr) * np.log(fc / fr))),
                     "js": float(jensenshannon(rs, cs, base=2))}
        if progress:
            print(f"  baseline {i}/{ref.width} {name}", flush=True)
    return out


def check_agreement(ours: dict, theirs: dict, exact: bool) -> None:
    """Same statistics from both paths, or the benchmark is not comparing like with like."""
    ks_tol = 1e-12 if exact else 2e-5  # a subsampled reference moves the ECDF by <= 1/max_rows
    for name, want in theirs.items():
        got = ours["features"][name]
        assert abs(got["ks_stat"] - want["ks_stat"]) <= ks_tol * max(1.0, want["ks_stat"]), name
        if exact and want["ks_pvalue"] > 1e-10:
            assert abs(got["ks_pvalue"] - want["ks_pvalue"]) <= 1e-8 * want["ks_pvalue"], name
        w_tol = 1e-9 if exact else 1e-3
        assert abs(got["wasserstein"] - want["wasserstein"]) <= w_tol * max(1.0, want["wasserstein"]), name
        for key in ("psi", "js"):
            assert abs(got[key] - want[key]) <= 1e-9 * max(1.0, want[key]), (name, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in reference and current")
    parser.add_argument("--cols", type=int, default=20, help="numeric columns")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--max-rows", type=int, default=None,
                        help="reference sorted-value cap (default: rows, i.e. exact)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mv-rows", type=int, default=5000,
                        help="rows sampled per side by the multivariate test")
    args = parser.parse_args()
    max_rows = args.max_rows or args.rows
    long_run = args.rows * args.cols >= 2_000_000

    print(f"data: {args.rows:,} reference x {args.rows:,} current x {args.cols} numeric columns "
          f"(reference cap {max_rows:,})", flush=True)
    ref, cur, shifted = make_data(args.rows, args.cols, args.seed)

    t0 = time.perf_counter()
    reference = fit_reference(ref, numeric=ref.columns, categorical=[], n_bins=args.bins,
                              max_rows=max_rows)
    t_fit = time.perf_counter() - t0
    report = (lambda done, total, name: print(f"  mlops {done}/{total} {name}", flush=True)) \
        if long_run else None
    t0 = time.perf_counter()
    ours = detect_drift(reference, cur, DriftPolicy(n_bins=args.bins), progress=report)
    t_detect = time.perf_counter() - t0
    print(f"(a) mlops   fit_reference {t_fit:7.2f} s + detect_drift {t_detect:7.2f} s "
          f"= {t_fit + t_detect:7.2f} s", flush=True)

    t0 = time.perf_counter()
    theirs = baseline(ref, cur, args.bins, progress=long_run)
    t_base = time.perf_counter() - t0
    print(f"(b) scipy loop (ks_2samp + wasserstein_distance + histogram PSI/JS) {t_base:7.2f} s")

    check_agreement(ours, theirs, exact=max_rows >= args.rows)
    print("statistics agree: KS statistic and p-value, Wasserstein, PSI, JS")
    drifted = sorted(n for n, f in ours["features"].items() if f["drift"])
    print(f"drifted: {drifted} (shifted: {shifted})")
    print(f"speed-up: detect_drift alone {t_base / t_detect:5.1f}x, "
          f"fit_reference + detect_drift {t_base / (t_fit + t_detect):5.1f}x")

    t0 = time.perf_counter()
    mv = domain_classifier(ref, cur, numeric=ref.columns, categorical=[], max_rows=args.mv_rows,
                           folds=3, permutations=500)
    t_mv = time.perf_counter() - t0
    top = [t["feature"] for t in mv["top_features"]]
    print(f"(c) multivariate domain classifier ({mv['ref_sampled']:,} + {mv['cur_sampled']:,} rows "
          f"sampled) {t_mv:7.2f} s: AUC {mv['auc']:.3f}, threshold {mv['threshold']:.3f}, "
          f"drift {mv['drift']}, top features {top}")
    print(f"multivariate / univariate time: {t_mv / t_detect:5.2f}x of detect_drift, "
          f"{t_mv / (t_fit + t_detect):5.2f}x of fit_reference + detect_drift")


if __name__ == "__main__":
    main()
