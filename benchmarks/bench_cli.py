"""Command-line start-up: ``mlops --help`` and ``action=drift`` on small real data against
a plain scipy script doing the same comparisons, whole processes, in the same run.

    python benchmarks/bench_cli.py                  # nycflights13, 5 interleaved repeats
    python benchmarks/bench_cli.py --before /work/main   # also time another checkout (before/after)

Data: the shipped nycflights13 subset (``benchmarks/data/flights_2013.csv.gz``, see
``alarms_data.py``): its numeric columns (distance, departure hour and delay, the origin's
weather), rows with a missing value dropped, the first half of 2013 as the reference and
the second half as the current data, written once as two parquet files.

Timed from outside (``measure.run_process``: imports, reading the files and writing the
output included on both sides), interleaved, best of ``--repeat``:

* ``python -m mlops --help`` (and ``--before``'s) and, for scale, ``python -c pass`` (the interpreter alone);
* ours: ``python run.py action=drift monitoring.reference=REF monitoring.current=CUR`` (every
  statistic of every column, calibrated limits, the JSON and HTML report, the history);
  *outside the action* is its wall time minus the action's own ``duration_s`` in
  ``result.json`` (the dispatcher's clock: the action's imports, reading, statistics,
  report): Python, Hydra's compose and run directory, the config checks;
* the peer: ``drift_peers.py scipy`` (pyarrow reads the files; ``ks_2samp``,
  ``wasserstein_distance``, PSI and JS on numpy-quantile bins, per column), whose values
  are asserted equal to ours (``bench_drift.check_scipy``).

Bytecode: the peer's libraries sit in site-packages, compiled to ``.pyc`` when pip installed
them; a checkout's ``mlops/`` is compiled on first import, unless ``PYTHONDONTWRITEBYTECODE``
is set (as in some sandboxes), when every run would compile ~100 modules from source (~0.1 s)
that no installed copy compiles. So each timed checkout's ``mlops/`` is compiled once before
timing (``compileall``, what ``pip install`` does; the ``.pyc`` files go to its ignored
``__pycache__``): both sides then start from bytecode.

``--json PATH`` appends the drift row (peer / ours) for ``run_all.py``; the note carries
the help and outside-the-action times.
"""
from __future__ import annotations

import argparse
import compileall
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from alarms_data import DATA_DIR, FLIGHTS, load_flights  # noqa: E402
from bench_drift import check_scipy  # noqa: E402
from measure import Measured, Row, best_of, emit, load_average, ours_env, run_process  # noqa: E402

COLUMNS = ["distance", "dep_hour", "dep_delay", "temp", "wind_speed", "precip", "visib"]
SPLIT = datetime(2013, 7, 1)


def write_flights(d: Path) -> tuple[Path, Path, int, int]:
    """The reference (first half of 2013) and current (second half) parquet files."""
    df = (load_flights(DATA_DIR / FLIGHTS.file)
          .select(FLIGHTS.timestamp, *[pl.col(c).cast(pl.Float64) for c in COLUMNS]).drop_nulls())
    ref = df.filter(pl.col(FLIGHTS.timestamp) < SPLIT).drop(FLIGHTS.timestamp)
    cur = df.filter(pl.col(FLIGHTS.timestamp) >= SPLIT).drop(FLIGHTS.timestamp)
    ref.write_parquet(d / "ref.parquet")
    cur.write_parquet(d / "cur.parquet")
    return d / "ref.parquet", d / "cur.parquet", ref.height, cur.height


def drift_command(root: Path, ref: Path, cur: Path, out: Path) -> list[str]:
    """The documented command line of a checkout at ``root``."""
    return [sys.executable, str(root / "run.py"), "action=drift", f"monitoring.reference={ref}",
            f"monitoring.current={cur}", "monitoring.on_drift=[]", f"hydra.run.dir={out}"]


def compile_checkout(root: Path) -> None:
    """Compile a checkout's ``mlops/`` to bytecode, as installing it would (see the docstring)."""
    if not compileall.compile_dir(str(root / "mlops"), quiet=1):
        sys.exit(f"compileall failed in {root / 'mlops'}")


def timed_runs(d: Path, ref: Path, cur: Path, repeat: int, before: Path | None) -> dict[str, list[Measured]]:
    """Every command ``repeat`` times, interleaved; the drift runs each in a fresh run dir."""
    counter = iter(range(10 ** 6))

    def drift(root: Path, name: str):
        env = {**ours_env(d / f"home_{name}"), "PYTHONPATH": str(root)}
        return lambda: run_process(drift_command(root, ref, cur, d / f"{name}{next(counter)}"),
                                   env=env, cwd=d).check(f"{name}: action=drift")

    fns = {
        "python": lambda: run_process([sys.executable, "-c", "pass"]).check("python -c pass"),
        "help": lambda: run_process([sys.executable, "-m", "mlops", "--help"], env=ours_env(), cwd=d
                                    ).check("mlops --help"),
        "ours": drift(HERE.parent, "ours"),
        "scipy": lambda: run_process([sys.executable, str(HERE / "drift_peers.py"), "scipy", str(ref),
                                      str(cur), str(d / "scipy.json")]).check("scipy script"),
    }
    if before is not None:
        fns["before"] = drift(before.resolve(), "before")
        fns["help before"] = lambda: run_process([sys.executable, "-m", "mlops", "--help"], cwd=d, env={
            **ours_env(), "PYTHONPATH": str(before.resolve())}).check("before: mlops --help")
    return best_of(fns, repeat)


def action_seconds(stdout: str) -> float:
    """The action's own ``duration_s`` from the ``result.json`` beside the report it printed."""
    report = next(line.split("report: ", 1)[1] for line in stdout.splitlines() if line.startswith("report: "))
    return float(json.loads((Path(report).parent / "result.json").read_text())["duration_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="interleaved runs, best kept")
    ap.add_argument("--before", default=None, help="another checkout (e.g. main) to time action=drift from")
    ap.add_argument("--json", default=None, help="append the result rows here (JSON lines)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ref, cur, n_ref, n_cur = write_flights(d)
        print(f"data: nycflights13, {n_ref:,} reference x {n_cur:,} current rows x {len(COLUMNS)} columns",
              flush=True)
        for root in [HERE.parent, *([Path(args.before).resolve()] if args.before else [])]:
            compile_checkout(root)
        load = [load_average()]
        runs = timed_runs(d, ref, cur, args.repeat, Path(args.before) if args.before else None)
        load.append(load_average())
        best = {k: min(v, key=lambda m: m.seconds) for k, v in runs.items()}
        ours_out = json.loads((Path(next(d.glob("ours*/drift.json")))).read_text())["features"]
        values = check_scipy(ours_out, json.loads((d / "scipy.json").read_text())["features"])
        # outside the action: per run (wall - the action's own clock), the best of them
        outside = min(m.seconds - action_seconds(m.stdout) for m in runs["ours"])
    py, helps, ours, scipy = (best[k].seconds for k in ("python", "help", "ours", "scipy"))
    print(f"  python -c pass {py:.3f} s; mlops --help {helps:.3f} s"
          + (f" (before: {best['help before'].seconds:.3f} s)" if "help before" in best else ""))
    print(f"  action=drift {ours:.3f} s, of which outside the action {outside:.3f} s; scipy script {scipy:.3f} s")
    rows = []
    if "before" in best:
        rows.append(Row(benchmark="CLI: action=drift, nycflights13", peer=f"ours before ({args.before})",
                        ours_s=ours, peer_s=best["before"].seconds, timer="whole process",
                        ours_peak_mb=best["ours"].peak_mb, peer_peak_mb=best["before"].peak_mb,
                        load=load, note=f"best of {args.repeat}; the same command line"))
    rows.append(Row(benchmark="CLI: action=drift, nycflights13", peer="scipy script", ours_s=ours, peer_s=scipy,
                    timer="whole process", ours_peak_mb=best["ours"].peak_mb, peer_peak_mb=best["scipy"].peak_mb,
                    values=values, load=load,
                    note=(f"best of {args.repeat}; {n_ref:,} x {n_cur:,} rows x {len(COLUMNS)}; outside the "
                          f"action {outside:.2f} s; mlops --help {helps:.2f} s; python -c pass {py:.2f} s")))
    emit(rows, args.json)


if __name__ == "__main__":
    main()
