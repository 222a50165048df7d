"""Monitoring judgments on real data: false alarms and delay, ours vs NannyML vs Evidently.

    python benchmarks/bench_alarms.py [--data storms,flights] [--peers-python PY] [--out FILE]

For each real data set (``alarms_data.py``) it writes a user project folder
(``alarms_project.py``), trains and promotes a model with ``mlops``, then runs three
scenarios over the same consecutive windows after the training period: ``none``,
``inputs`` (data drift from ``shift_at``) and ``labels`` (concept drift from ``shift_at``)
(``alarms_shift.py``). Per window and scenario it records each judgment:

- ours (``alarms_ours.py``): ``mlops action=monitor`` on the window (data drift, the
  performance drop, the streaming detectors) and ``mlops action=replay`` of the window
  through the realtime app (the circuit breaker);
- NannyML and Evidently at their default settings on the same rows, features and
  predictions (``alarms_peers.py``, in the peers' own virtualenv: ``--peers-python``,
  default ``$MLOPS_PEERS_PYTHON`` or ``/work/venv-peers/bin/python``; skipped with a line
  when missing).

It prints one markdown table per data set (false-alarm rate over the unshifted windows,
delay in windows after the shift, the issue's targets) and writes every per-window verdict
to ``--out`` (JSON). Nothing is a constant: every figure is measured in this run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # measure the mlops of this checkout, not an installed one
sys.path.insert(0, str(HERE))
from alarms_data import DATASETS, DataSet, natural_moves  # noqa: E402
from alarms_ours import Project, monitor_window, replay_window, scored_rows, train_and_promote  # noqa: E402
from alarms_project import reference_rows, write_project  # noqa: E402
from alarms_report import dataset_table, score_dataset  # noqa: E402
from alarms_shift import SCENARIOS, scenario_frame  # noqa: E402

DEFAULT_PEERS = "/work/venv-peers/bin/python"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def our_windows(project: Project, data_path: str, windows: list, first: datetime, snapshot: Path,
                breaker: bool, label: str, extra: tuple[str, ...] = ()) -> dict[str, list]:
    """Our four judgments per window of one scenario."""
    calls: dict[str, list] = {"data_drift": [], "concept_drift": [], "detectors": [], "breaker": [],
                              "why": [], "breaker_trip": []}
    for i, (lo, hi) in enumerate(windows):
        found = monitor_window(project, data_path, lo, hi, first, extra)
        warm = windows[i - 1][0] if i else lo - (hi - lo)   # the period before (the test period's end)
        replayed = replay_window(project, data_path, lo, hi, first, snapshot, warm) if breaker else {}
        found["breaker"] = replayed.get("breaker")
        found["breaker_trip"] = (replayed.get("trips") or [None])[0]  # when and why it tripped
        for k in calls:
            calls[k].append(found[k])
        fired = [k for k, v in found.items() if v is True]
        log(f"  {label} window {i + 1}/{len(windows)} {lo.date()}: "
            f"{', '.join(fired) if fired else 'quiet'}")
    return calls


def peer_rows(ds: DataSet, rows: pl.DataFrame, ts: str, windows: list) -> pl.DataFrame:
    """Tag rows: reference (training period), perf_reference (valid + test), analysis windows."""
    t0, t1, _, t3 = ds.dates()
    idx = pl.lit(-1)
    for i, (lo, hi) in enumerate(windows):
        idx = pl.when((pl.col(ts) >= lo) & (pl.col(ts) < hi)).then(pl.lit(i)).otherwise(idx)
    part = (pl.when((pl.col(ts) >= t0) & (pl.col(ts) < t1)).then(pl.lit("reference"))
            .when((pl.col(ts) >= t1) & (pl.col(ts) < t3)).then(pl.lit("perf_reference"))
            .when(idx >= 0).then(pl.lit("analysis")).otherwise(pl.lit(None)))
    return rows.with_columns(idx.alias("__window"), part.alias("__part")).drop_nulls("__part")


def run_peers(python: str | None, rows: pl.DataFrame, spec: dict, work: Path) -> dict:
    """The peers' per-window judgments, computed in their own interpreter."""
    if python is None:
        return {p: {"skipped": "no peers interpreter (--peers-python)"} for p in ("nannyml", "evidently")}
    rows_path, spec_path, out_path = work / "rows.parquet", work / "spec.json", work / "peers.json"
    rows.write_parquet(rows_path)
    spec_path.write_text(json.dumps(spec, default=str))
    proc = subprocess.run([python, str(HERE / "alarms_peers.py"), str(rows_path), str(spec_path),
                           str(out_path)], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {p: {"skipped": f"peers failed: {reason}"} for p in ("nannyml", "evidently")}
    return json.loads(out_path.read_text())


def run_dataset(ds: DataSet, work: Path, peers_python: str | None, breaker: bool,
                extra: tuple[str, ...] = ()) -> dict:
    root = work / ds.name
    write_project(root, ds)
    project = Project(root)
    t = time.perf_counter()
    trained = train_and_promote(project)
    log(f"{ds.name}: {trained['headline']} ({time.perf_counter() - t:.0f} s)")
    snapshot = root / "outputs" / "home-trained"
    shutil.copytree(root / ".mlops", snapshot)
    events = ds.load()
    first = events[ds.timestamp].min()
    starts = ds.window_starts()
    windows = [(lo, hi) for lo, hi in zip(starts, [*starts[1:], _end(ds, starts)])]
    shift_index = starts.index(datetime.fromisoformat(ds.shift_at))
    ref = reference_rows(ds, events)
    moves = natural_moves(events, ds, list(ds.inputs_shift))
    sizes = {c: {"sd": k, "shift": k * float(ref[c].std()), "natural_move": moves[c]}
             for c, k in ds.inputs_shift.items()}
    out = {"task": ds.task, "model": trained["headline"], "reference": ds.reference,
           "input_shift_sizes": sizes, "windows": [[str(a), str(b)] for a, b in windows],
           "shift_at": ds.shift_at, "shift_index": shift_index, "inputs_shift": ds.inputs_shift,
           "labels_shift": ds.labels_shift, "monitor_overrides": list(extra), "scenarios": {}}
    for scenario in SCENARIOS:
        rel = f"data/{ds.name}-{scenario}.csv"
        scenario_frame(events, scenario, at=datetime.fromisoformat(ds.shift_at), timestamp=ds.timestamp,
                       label=ds.label, inputs=ds.inputs_shift, labels=ds.labels_shift,
                       reference=ref).write_csv(root / rel)
        log(f"{ds.name} / {scenario}: {len(windows)} windows, shift at window {shift_index + 1}")
        ours = our_windows(project, rel, windows, first, snapshot, breaker, f"{ds.name}/{scenario}",
                           extra)
        rows, features, ts = scored_rows(project, rel)
        spec = {"task": ds.task, "features": features, "categorical": list(ds.categorical),
                "label": ds.label, "timestamp": ts, "threshold": 0.5,
                "metric": "rmse" if ds.task == "regression" else "roc_auc",
                "period": "Y" if ds.window == "year" else "W", "windows": windows}
        t = time.perf_counter()
        peers = run_peers(peers_python, peer_rows(ds, rows, ts, windows), spec, root / "outputs")
        log(f"{ds.name} / {scenario}: peers in {time.perf_counter() - t:.0f} s"
            + "".join(f"; {p} skipped: {v['skipped']}" for p, v in peers.items() if "skipped" in v))
        out["scenarios"][scenario] = {"ours": ours, **peers}
    out.update(score_dataset(out))
    return out


def _end(ds: DataSet, starts: list[datetime]) -> datetime:
    from alarms_data import next_start
    return next_start(starts[-1], ds.window)


def peers_python(arg: str | None) -> str | None:
    path = arg or os.environ.get("MLOPS_PEERS_PYTHON") or DEFAULT_PEERS
    if Path(path).exists():
        return path
    print(f"peers skipped: no interpreter at {path} (python3 -m venv /work/venv-peers && "
          "/work/venv-peers/bin/pip install nannyml evidently 'pandas<3' pyarrow)")
    return None


def print_tables(result: dict) -> int:
    """One markdown table per data set, scored afresh from the per-window verdicts."""
    for name, res in result["datasets"].items():
        res.update(score_dataset(res))
        print()
        print(dataset_table(name, res))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="storms,flights")
    ap.add_argument("--peers-python", default=None)
    ap.add_argument("--no-breaker", action="store_true", help="skip the replays (faster)")
    ap.add_argument("--no-peers", action="store_true", help="skip NannyML and Evidently")
    ap.add_argument("--monitor", action="append", default=[], metavar="OVERRIDE",
                    help="an extra override of every monitor run, e.g. 'monitoring.reference={previous: 3}'")
    ap.add_argument("--out", type=Path, default=Path("outputs/bench_alarms.json"))
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir)")
    ap.add_argument("--tables", type=Path, default=None,
                    help="re-score and print the tables of a JSON this script wrote; run nothing")
    args = ap.parse_args(argv)
    if args.tables:
        return print_tables(json.loads(args.tables.read_text()))
    python = None if args.no_peers else peers_python(args.peers_python)
    t0 = time.perf_counter()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-alarms-"))
    result = {"started": datetime.now().isoformat(timespec="seconds"), "datasets": {}}
    for name in args.data.split(","):
        result["datasets"][name] = run_dataset(DATASETS[name], work, python, not args.no_breaker,
                                               tuple(args.monitor))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print_tables(result)
    print(f"\nwrote {args.out} ({result['seconds']:.0f} s)")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
