"""The peers' side of ``bench_drift.py``: one process per run, timed from outside.

    python drift_peers.py PEER REF.parquet CUR.parquet OUT.json [--bins 10]

PEER is one of:

- ``scipy``: the per-column loop a user would write (pyarrow reads the files;
  ``scipy.stats.ks_2samp``, ``wasserstein_distance / std``, PSI and JS on numpy-quantile bins
  with ``numpy.histogram``). Runs in our interpreter (numpy, scipy and pyarrow only).
- ``evidently``: ``Report`` of ``ValueDrift(column, method)`` for ``ks`` and ``wasserstein``
  per column (its p-value and normed distance are scipy's, so they must equal ours); its PSI
  and JS use Evidently's own bins, so they are not asked for.
- ``nannyml``: ``UnivariateDriftCalculator`` (Kolmogorov-Smirnov, Wasserstein, Jensen-Shannon)
  with the whole current file as one chunk, at its defaults: above 10,000 reference rows its
  KS and Wasserstein are estimated on 10,000 equal-width bins (its fastest form; values close
  to, not equal to, scipy's). ``nannyml-exact`` asks for ``calculation_method: exact``.

The NannyML and Evidently runs need their own virtualenv (``measure.peer_python("peers")``).
OUT.json: ``{"features": {column: {statistic: value}}, "version": ...}``.
"""
from __future__ import annotations

import json
import os
import sys
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")   # no telemetry (no network here)
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


def scipy_loop(ref_path: str, cur_path: str, bins: int) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    import scipy
    import scipy.stats
    from scipy.spatial.distance import jensenshannon
    ref, cur = pq.read_table(ref_path), pq.read_table(cur_path)
    out = {}
    for name in ref.column_names:
        r = ref.column(name).to_numpy()
        c = cur.column(name).to_numpy()
        ks = scipy.stats.ks_2samp(r, c)
        w = scipy.stats.wasserstein_distance(r, c) / max(float(np.std(r)), 1e-3)
        edges = np.unique(np.quantile(r, np.arange(1, bins) / bins))
        cuts = np.r_[-np.inf, edges, np.inf]
        rs, cs = np.histogram(r, cuts)[0] / r.size, np.histogram(c, cuts)[0] / c.size
        fr, fc = np.maximum(rs, 1e-4), np.maximum(cs, 1e-4)
        out[name] = {"ks_stat": float(ks.statistic), "ks_pvalue": float(ks.pvalue), "wasserstein": w,
                     "psi": float(np.sum((fc - fr) * np.log(fc / fr))),
                     "js": float(jensenshannon(rs, cs, base=2))}
    return {"features": out, "version": f"scipy {scipy.__version__}"}


def evidently_report(ref_path: str, cur_path: str, bins: int) -> dict:
    import evidently
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    cols = list(ref.columns)
    definition = DataDefinition(numerical_columns=cols)
    methods = {"ks": "ks_pvalue", "wasserstein": "wasserstein"}
    report = Report([ValueDrift(column=c, method=m) for c in cols for m in methods])
    snap = report.run(Dataset.from_pandas(cur, data_definition=definition),
                      Dataset.from_pandas(ref, data_definition=definition))
    out: dict = {c: {} for c in cols}
    values = iter(m["value"] for m in snap.dict()["metrics"])
    for c in cols:
        for key in methods.values():
            out[c][key] = float(next(values))
    return {"features": out, "version": f"evidently {evidently.__version__}"}


def nannyml_calculator(ref_path: str, cur_path: str, bins: int, exact: bool = False) -> dict:
    import nannyml as nml
    import pandas as pd
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    cols = list(ref.columns)
    # NannyML 0.13 looks for the method's name among the keys, then reads calculation_method
    # at the top level; the nested form is what its docs show: give both
    params = ({"kolmogorov_smirnov": {"calculation_method": "exact"},
               "wasserstein": {"calculation_method": "exact"}, "calculation_method": "exact"}
              if exact else None)
    calc = nml.UnivariateDriftCalculator(
        column_names=cols, continuous_methods=["kolmogorov_smirnov", "wasserstein", "jensen_shannon"],
        chunk_number=1, computation_params=params)
    calc.fit(ref)
    res = calc.calculate(cur).filter(period="analysis").to_df()
    names = {"kolmogorov_smirnov": "ks_stat", "wasserstein": "wasserstein_raw", "jensen_shannon": "js_own_bins"}
    out = {c: {ours: float(res[(c, method, "value")].iloc[0]) for method, ours in names.items()} for c in cols}
    return {"features": out, "version": f"nannyml {nml.__version__}" + (" (exact)" if exact else "")}


PEERS = {"scipy": scipy_loop, "evidently": evidently_report, "nannyml": nannyml_calculator,
         "nannyml-exact": lambda r, c, b: nannyml_calculator(r, c, b, exact=True)}


def main(argv: list[str]) -> int:
    peer, ref_path, cur_path, out_path = argv[:4]
    bins = int(argv[5]) if len(argv) > 5 and argv[4] == "--bins" else 10
    warnings.filterwarnings("ignore")
    result = PEERS[peer](ref_path, cur_path, bins)
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
