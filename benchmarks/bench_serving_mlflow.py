"""Serving against MLflow: the same fitted model behind ``mlflow models serve`` and behind our
``POST /predict``, loaded by ``wrk`` in the same run (not run in CI).

    python benchmarks/bench_serving_mlflow.py [--duration 10] [--concurrency 1 8]

The model (``bench_serving.build``: a ColumnTransformer + LogisticRegression pipeline) is
pickled here and saved with ``mlflow.sklearn.save_model(pyfunc_predict_fn="predict_proba")``
in MLflow's own virtualenv (``measure.peer_python("mlflow")``, the same scikit-learn), then
served by ``mlflow models serve --env-manager local`` (one worker, as ours) with one record
per request in ``dataframe_split`` form, the precomputed features. Ours computes the window
features itself (realtime mode, SQLite store, breaker, durable log): it does more per
request. Before loading, MLflow's answers for 20 records are asserted equal to
``predict_proba`` in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from bench_serving import _free_port, _lua, _Server, _show, build, request_bodies  # noqa: E402
from measure import Row, emit, load_average, peer_python  # noqa: E402

SAVE = """import pickle, sys, mlflow.sklearn
model = pickle.load(open(sys.argv[1], "rb"))
mlflow.sklearn.save_model(model, sys.argv[2], pyfunc_predict_fn="predict_proba",
                         skops_trusted_types=["numpy.dtype"])  # its skops format asks
import mlflow; print(mlflow.__version__)
"""


class _MLflow(_Server):
    """``mlflow models serve`` in the MLflow virtualenv."""

    def __init__(self, python: str, model_dir: str, log_dir: Path):
        self.name, self.port = "mlflow", _free_port()
        self.log = open(log_dir / "mlflow.stderr", "wb")
        bin_dir = Path(python).parent
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
               "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        self.proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", model_dir,
                                      "-h", "127.0.0.1", "-p", str(self.port), "--env-manager", "local",
                                      "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def ready(self, timeout: float = 120) -> "_MLflow":
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ping", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("mlflow models serve did not start")


def _check_values(port: int, bodies: list[str], rows: list[dict], model, names: list[str]) -> None:
    import httpx
    import polars as pl
    want = model.predict_proba(pl.DataFrame(rows[:20]).select(names))[:, 1]
    for body, w in zip(bodies[:20], want):
        got = httpx.post(f"http://127.0.0.1:{port}/invocations", content=body,
                         headers={"Content-Type": "application/json"}, timeout=30).json()
        p = np.asarray(got["predictions"], dtype=float).ravel()[-1]
        assert abs(p - w) <= 1e-12, (p, w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    python = peer_python("mlflow")
    if python is None:
        return 0
    events, plan, feats, model = build()
    ours_bodies, feature_rows = request_bodies(plan, events, feats)
    names = plan.feature_names
    mlflow_bodies = [json.dumps({"dataframe_split": {"columns": names, "data": [[f[n] for n in names]]}})
                     for f in feature_rows]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "model.pkl").write_bytes(pickle.dumps(model))
        version = subprocess.run([python, "-c", SAVE, str(tmp / "model.pkl"), str(tmp / "mlflow_model")],
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        (tmp / "d").mkdir()
        servers = {"ours": _Server("ours", ["--serve-ours", str(tmp / "d")], tmp),
                   "mlflow": _MLflow(python, str(tmp / "mlflow_model"), tmp)}
        try:
            for srv in servers.values():
                srv.ready()
            _check_values(servers["mlflow"].port, mlflow_bodies, feature_rows, model, plan.feature_names)
            lua = {"ours": _lua(ours_bodies, "/predict", tmp / "ours.lua"),
                   "mlflow": _lua(mlflow_bodies, "/invocations", tmp / "mlflow.lua")}
            for conc in args.concurrency:
                load = [load_average()]
                got = {k: servers[k].load(lua[k], args.duration, conc) for k in ("mlflow", "ours")}
                load.append(load_average())
                for k, st in got.items():
                    _show(k, st)
                rows.append(Row(benchmark=f"HTTP predict, one record per request, concurrency {conc}",
                                peer=f"MLflow {version} models serve", ours_s=1 / got["ours"]["rps"],
                                peer_s=1 / got["mlflow"]["rps"], timer=f"wrk -d{args.duration}s, seconds per request",
                                values="MLflow's probabilities = predict_proba (20 records)", load=load,
                                note=f"p99 ours {got['ours']['p99_ms']:.1f} ms, "
                                     f"MLflow {got['mlflow']['p99_ms']:.1f} ms; "
                                     "ours computes the window features, MLflow is given them"))
        finally:
            for srv in servers.values():
                srv.stop()
    emit(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
