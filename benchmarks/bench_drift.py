"""Drift detection speed: ``mlops action=drift`` against a scipy loop, Evidently and NannyML,
every one measured in this run on the same files, values asserted equal.

    python benchmarks/bench_drift.py                       # 1M reference x 1M current x 20 columns
    python benchmarks/bench_drift.py --rows 100000 --cols 5 --peers scipy
    python benchmarks/bench_drift.py --ref-rows 10000000 --rows 1000000 --sections process

Sections:

* ``process`` (whole process, imports and file reading included on both sides, best of
  ``--repeat`` interleaved runs; peak memory of each process tree): ours is the real command
  line, ``python run.py action=drift monitoring.reference=REF monitoring.current=CUR`` (every
  statistic of every column, calibrated limits, the JSON and HTML report, the history); the
  peers are ``drift_peers.py`` processes: the per-column scipy loop (KS statistic and p-value,
  normed Wasserstein, PSI and JS: all equal to ours), Evidently (KS p-value and normed
  Wasserstein per column: equal to ours), NannyML at its defaults (KS and Wasserstein
  estimated on 10,000 bins: the distance from ours is printed) and NannyML exact (equal).
* ``engine`` (in process, imports excluded on both sides): ``fit_reference`` + ``detect_drift``
  against the same scipy loop on the frames in memory.
* ``multivariate``: the domain classifier (off by default in ``action=drift``; on with
  ``monitoring.multivariate.enabled=true``) timed against the univariate work.

``--json PATH`` appends one row per comparison for ``run_all.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's mlops
sys.path.insert(0, str(HERE))
from measure import Row, emit, load_average, ours_env, peer_python, run_process  # noqa: E402

PEER_LABEL = {"scipy": "scipy loop", "evidently": "Evidently", "nannyml": "NannyML (default: binned)",
              "nannyml-exact": "NannyML (exact)"}


def make_data(rows: int, cols: int, seed: int, ref_rows: int | None = None
              ) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """Seeded frames: normal, lognormal and uniform columns; every third column shifted."""
    rng = np.random.default_rng(seed)
    n_ref = ref_rows or rows
    ref, cur, shifted = {}, {}, []
    for i in range(cols):
        name = f"f{i:02d}"
        shift = 0.05 * (1 + i % 4) if i % 3 == 0 else 0.0
        if i % 3 == 1:
            ref[name], cur[name] = rng.lognormal(size=n_ref), rng.lognormal(shift, size=rows)
        elif i % 3 == 2:
            ref[name], cur[name] = rng.uniform(size=n_ref), rng.uniform(shift, 1 + shift, size=rows)
        else:
            ref[name], cur[name] = rng.normal(size=n_ref), rng.normal(shift, size=rows)
        if shift:
            shifted.append(name)
    return pl.DataFrame(ref), pl.DataFrame(cur), shifted


def scipy_loop(ref: pl.DataFrame, cur: pl.DataFrame, n_bins: int) -> dict:
    """The per-column scipy/numpy loop, in process (the same code as drift_peers.scipy_loop)."""
    from drift_peers import scipy_loop as loop
    with tempfile.TemporaryDirectory() as d:
        ref.write_parquet(f"{d}/r.parquet")
        cur.write_parquet(f"{d}/c.parquet")
        t0 = time.perf_counter()
        out = loop(f"{d}/r.parquet", f"{d}/c.parquet", n_bins)
        out["seconds"] = time.perf_counter() - t0  # includes reading the two files, as ours below
    return out


def check_scipy(ours: dict, theirs: dict) -> str:
    """Same statistics from both, or the comparison is not like with like."""
    for name, want in theirs.items():
        got = ours[name]
        assert abs(got["ks_stat"] - want["ks_stat"]) <= 1e-12 * max(1.0, want["ks_stat"]), name
        if want["ks_pvalue"] > 1e-10:  # below, an asymptotic value (DESIGN.md 6)
            assert abs(got["ks_pvalue"] - want["ks_pvalue"]) <= 1e-8 * want["ks_pvalue"], name
        for key in ("wasserstein", "psi", "js"):
            assert abs(got[key] - want[key]) <= 1e-9 * max(1.0, want[key]), (name, key)
    return "KS statistic and p-value, Wasserstein, PSI, JS (1e-9)"


def check_peer(peer: str, ours: dict, theirs: dict, ref_std: dict) -> str:
    """Evidently and NannyML exact must agree; NannyML's binned estimates are measured."""
    if peer == "evidently":
        for name, want in theirs.items():
            if want["ks_pvalue"] > 1e-10:
                assert abs(ours[name]["ks_pvalue"] - want["ks_pvalue"]) <= 1e-8 * want["ks_pvalue"], name
            assert abs(ours[name]["wasserstein"] - want["wasserstein"]) <= 1e-9 * want["wasserstein"], name
        return "KS p-value, normed Wasserstein (1e-9)"
    ks = max(abs(ours[n]["ks_stat"] - w["ks_stat"]) for n, w in theirs.items())
    wr = max(abs(ours[n]["wasserstein"] * ref_std[n] - w["wasserstein_raw"]) / w["wasserstein_raw"]
             for n, w in theirs.items())
    if peer == "nannyml-exact":
        assert ks <= 1e-12 and wr <= 1e-9, (ks, wr)
        return "KS statistic, Wasserstein (1e-9)"
    return f"not equal: its estimates differ from ours by up to {ks:.1e} (KS) and {wr:.1e} (Wasserstein, relative)"


def section_process(ref: pl.DataFrame, cur: pl.DataFrame, args) -> list[Row]:
    peers = [p for p in args.peers.split(",") if p]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ref.write_parquet(d / "ref.parquet")
        cur.write_parquet(d / "cur.parquet")
        ref_std = {n: float(np.std(ref[n].to_numpy())) for n in ref.columns}
        pythons = {"scipy": sys.executable}
        for p in peers:
            if p != "scipy":
                pythons[p] = peer_python("peers")
        peers = [p for p in peers if pythons.get(p)]
        runs = {"ours": [], **{p: [] for p in peers}}
        load = [load_average()]
        for rep in range(args.repeat):
            out = d / f"ours{rep}"
            runs["ours"].append(run_process(
                [sys.executable, str(HERE.parent / "run.py"), "action=drift",
                 f"monitoring.reference={d / 'ref.parquet'}", f"monitoring.current={d / 'cur.parquet'}",
                 "monitoring.on_drift=[]", f"hydra.run.dir={out}"], env=ours_env(d / "home"), cwd=d,
            ).check("mlops action=drift"))
            for p in peers:
                runs[p].append(run_process(
                    [pythons[p], str(HERE / "drift_peers.py"), p, str(d / "ref.parquet"), str(d / "cur.parquet"),
                     str(d / f"{p}.json"), "--bins", str(args.bins)]).check(p))
            load.append(load_average())
            if args.before:  # the same command from another checkout (e.g. main): before / after
                runs.setdefault("before", []).append(run_process(
                    [sys.executable, str(Path(args.before) / "run.py"), "action=drift",
                     f"monitoring.reference={d / 'ref.parquet'}", f"monitoring.current={d / 'cur.parquet'}",
                     "monitoring.on_drift=[]", f"hydra.run.dir={d / f'before{rep}'}"],
                    env={**ours_env(d / "home_before"), "PYTHONPATH": str(Path(args.before).resolve())},
                    cwd=d).check("action=drift before"))
        ours = json.loads((d / "ours0" / "drift.json").read_text())["features"]
        best = {k: min(v, key=lambda m: m.seconds) for k, v in runs.items()}
        if args.before:
            rows.append(Row(benchmark=f"drift {args.size}", peer=f"ours before ({args.before})",
                            ours_s=best["ours"].seconds, peer_s=best["before"].seconds, timer="whole process",
                            ours_peak_mb=best["ours"].peak_mb, peer_peak_mb=best["before"].peak_mb,
                            values="not compared: before kept a 200k sample and ran the multivariate check",
                            load=load, note=f"best of {args.repeat}; the same command line"))
        for p in peers:
            theirs = json.loads((d / f"{p}.json").read_text())
            values = (check_scipy(ours, theirs["features"]) if p == "scipy"
                      else check_peer(p, ours, theirs["features"], ref_std))
            rows.append(Row(benchmark=f"drift {args.size}", peer=f"{PEER_LABEL[p]} ({theirs['version']})",
                            ours_s=best["ours"].seconds, peer_s=best[p].seconds, timer="whole process",
                            ours_peak_mb=best["ours"].peak_mb, peer_peak_mb=best[p].peak_mb,
                            values=values, load=load,
                            note=f"best of {args.repeat}; ours: python run.py action=drift"))
    return rows


def section_engine(ref: pl.DataFrame, cur: pl.DataFrame, args) -> list[Row]:
    from mlops.monitoring.drift import DriftPolicy, detect_drift
    from mlops.monitoring.reference import fit_reference
    load = [load_average()]
    best_ours, best_loop, ours, theirs = float("inf"), float("inf"), None, None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        reference = fit_reference(ref, numeric=ref.columns, categorical=[], n_bins=args.bins)
        ours = detect_drift(reference, cur, DriftPolicy(n_bins=args.bins))
        best_ours = min(best_ours, time.perf_counter() - t0)
        theirs = scipy_loop(ref, cur, args.bins)
        best_loop = min(best_loop, theirs["seconds"])
        load.append(load_average())
    values = check_scipy(ours["features"], theirs["features"])
    drifted = sorted(n for n, f in ours["features"].items() if f["drift"])
    print(f"  engine: drifted {drifted}")
    return [Row(benchmark=f"drift {args.size}, engine", peer="scipy loop", ours_s=best_ours, peer_s=best_loop,
                timer="in process, imports excluded; fit_reference included", values=values, load=load)]


def section_multivariate(ref: pl.DataFrame, cur: pl.DataFrame, args) -> list[Row]:
    from mlops.monitoring.drift import DriftPolicy, detect_drift
    from mlops.monitoring.multivariate import domain_classifier
    from mlops.monitoring.reference import fit_reference
    load = [load_average()]
    t0 = time.perf_counter()
    detect_drift(fit_reference(ref, numeric=ref.columns, categorical=[]), cur, DriftPolicy())
    t_uni = time.perf_counter() - t0
    t0 = time.perf_counter()
    mv = domain_classifier(ref, cur, numeric=ref.columns, categorical=[], max_rows=5000, folds=3,
                           permutations=500)
    t_mv = time.perf_counter() - t0
    load.append(load_average())
    print(f"  multivariate: AUC {mv['auc']:.3f}, threshold {mv['threshold']:.3f}, drift {mv['drift']}")
    return [Row(benchmark=f"drift {args.size}: multivariate check", peer="univariate fit + detect",
                ours_s=t_mv, peer_s=t_uni, timer="in process", load=load,
                note="not a peer: what the opt-in domain classifier costs beside the per-column work")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current rows (and reference rows)")
    parser.add_argument("--ref-rows", type=int, default=None, help="reference rows (default: --rows)")
    parser.add_argument("--cols", type=int, default=20, help="numeric columns")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="interleaved runs, best kept")
    parser.add_argument("--sections", default="process,engine")
    parser.add_argument("--peers", default="scipy,evidently,nannyml,nannyml-exact")
    parser.add_argument("--json", default=None, help="append the result rows here (JSON lines)")
    parser.add_argument("--before", default=None, help="another checkout (e.g. main's) to time the same command from")
    args = parser.parse_args()
    n_ref = args.ref_rows or args.rows
    args.size = f"{n_ref / 1e6:g}M x {args.rows / 1e6:g}M x {args.cols}"
    print(f"data: {n_ref:,} reference x {args.rows:,} current x {args.cols} numeric columns", flush=True)
    ref, cur, shifted = make_data(args.rows, args.cols, args.seed, args.ref_rows)
    print(f"  shifted: {shifted}")
    sections = {"process": section_process, "engine": section_engine, "multivariate": section_multivariate}
    for name in args.sections.split(","):
        print(f"{name}:", flush=True)
        emit(sections[name](ref, cur, args), args.json)


if __name__ == "__main__":
    main()
