"""Whole-product HTTP latency of this checkout against another one (e.g. the commit before a
rework), measured in the same run: issue 21's "latency within 10% of today's".

For each checkout (``ours`` = this one, ``before`` = ``--before``), in its own temp home and
with its own code (``PYTHONPATH`` and ``cwd`` = the checkout):

1. the same events for both (synthetic, written once to parquet, read with ``data=files``;
   the data ends the day before today, so request times are never in the future and the
   old store's wall-clock retention keeps the last 30 days);
2. ``action=train``, an approver's key (``action=keygen``), ``action=approve`` and
   ``action=promote`` to ``production`` (the gates of ``conf/registry/default.yaml``);
3. the online store learns the history before the requested events: ours with the
   documented ``action=materialize serving=realtime serving.as_of=<first request>``; a
   checkout without ``serving.as_of`` (before issue 21) with its own ``append_events`` on
   the served plan (what its ``action=replay`` preloads), from a small in-checkout process;
4. ``python run.py action=serve serving=realtime serving.port=<free port>`` on 127.0.0.1.

Then the same request bodies (one record each: the last ``--requests`` events, which
follow the training period and the loaded history) are posted by ``wrk`` at each
concurrency, before and ours interleaved ``--repeats`` times. Before the load a few
records are posted to both and their probabilities compared (same data, same trainer: equal
models are expected; a difference is printed, not hidden). Every answer must be 2xx and
scored (not the breaker's abstain). Printed per concurrency: req/s, p50 and p99 of each,
the throughput ratio ours/before and the p99 ratio ours/before (target: within 10%), with
the load average.

Usage::

    python benchmarks/bench_serving_before.py --before /work/wt-before --duration 10
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import polars as pl  # noqa: E402
from bench_serving import _free_port, _lua, _Server, _show, _wait_ready  # noqa: E402
from measure import Row, emit, load_average  # noqa: E402

EVENT_ID = "transaction_id"
APPROVER = "bench"


def write_events(folder: Path, n_users: int, days: int, *, today: date | None = None) -> Path:
    """The synthetic demo events, ending the day before ``today``, as one parquet file."""
    from mlops.data.synthetic import SyntheticParams, generate
    start = (today or date.today()) - timedelta(days=days + 1)
    events = generate(SyntheticParams(n_users=n_users, days=days, start=start.isoformat()))
    path = folder / "events.parquet"
    events.write_parquet(path)
    return path


def split_requests(events: pl.DataFrame, timestamp: str, requests: int) -> tuple[pl.DataFrame, object]:
    """(the requested events: the last ``requests`` in time order, their first time): the
    history is every event strictly before that time, so no requested event is history."""
    ordered = events.sort(timestamp, maintain_order=True)
    first = ordered[timestamp][ordered.height - requests]
    return ordered.filter(pl.col(timestamp) >= first), first


def request_bodies(requested: pl.DataFrame, source_columns: list[str], timestamp: str) -> list[str]:
    """One JSON body per event (its source columns and event id; ISO timestamps)."""
    bodies = []
    for r in requested.select([*source_columns, EVENT_ID]).to_dicts():
        r[timestamp] = r[timestamp].isoformat()
        bodies.append(json.dumps({"records": [r]}))
    return bodies


def data_overrides(events: Path, home: Path) -> list[str]:
    return ["data=files", f"data.path={events}", f"data.event_id={EVENT_ID}",
            f"paths.home={home}"]


PRELOAD = """
import sys
from pathlib import Path
from datetime import datetime
import polars as pl
from hydra import compose, initialize_config_dir
from mlops.actions.context import RunContext
from mlops.actions.serving_support import served_plan
from mlops.features.online import append_events, open_store
from mlops.config import register
register()
overrides, first = sys.argv[1:-1], datetime.fromisoformat(sys.argv[-1])
with initialize_config_dir(config_dir=str(Path.cwd() / "conf"), version_base="1.3"):
    cfg = compose(config_name="config", overrides=overrides)
ctx = RunContext.from_config(cfg)
plan, _ = served_plan(ctx)
ts = plan.timestamp
events = ctx.scan_events().filter(pl.col(ts) < first).collect()
s = cfg.serving.store
store = open_store(s.type, path=s.path, url=s.url, namespace=s.namespace,
                   max_events_per_entity=s.max_events_per_entity, timeout_ms=s.timeout_ms)
n = append_events(plan, store, events.select(list(plan.source_columns)),
                  events["%s"].cast(pl.String).to_list())
print(f"preloaded {n} events before {first}")
""" % EVENT_ID


class Checkout(_Server):
    """One checkout's model, store and server, each step run with that checkout's code
    (loaded with wrk and stopped as bench_serving's servers are)."""

    def __init__(self, name: str, root: Path, work: Path, events: Path):
        self.name, self.root = name, root.resolve()
        self.work = work / name
        self.home = self.work / "home"
        self.work.mkdir(parents=True)
        self.common = data_overrides(events, self.home)
        self.env = {**os.environ, "PYTHONPATH": str(self.root), "HYDRA_FULL_ERROR": "1"}
        self.env.pop("MLOPS_HOME", None)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def run(self, *args: str, step: str) -> str:
        approver = [] if step == "keygen" else [f"+registry.approvers.{APPROVER}.public_key_file=keys/{APPROVER}.pub"]
        cmd = [sys.executable, "run.py", *args, *self.common, *approver,
               f"hydra.run.dir={self.work / step}", f"paths.output_dir={self.work / step}"]
        res = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True,
                             timeout=900)
        if res.returncode != 0:
            raise RuntimeError(f"{self.name}: {step} exited {res.returncode}:\n"
                               f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
        return res.stdout

    def prepare(self, first_request) -> None:
        """Train, approve and promote version 1, and load the history into the store."""
        self.run("action=keygen", f"registry.approver={APPROVER}", step="keygen")
        self.run("action=train", step="train")
        self.run("action=approve", "registry.version=1", f"registry.approver={APPROVER}", step="approve")
        self.run("action=promote", "registry.version=1", "registry.alias=production", step="promote")
        has_as_of = "as_of:" in (self.root / "conf/serving/realtime.yaml").read_text()
        if has_as_of:
            out = self.run("action=materialize", "serving=realtime",
                           f"serving.as_of={first_request.isoformat()}", step="materialize")
        else:
            res = subprocess.run([sys.executable, "-c", PRELOAD, *self.common,
                                  f"paths.output_dir={self.work / 'preload'}",
                                  first_request.isoformat()],
                                 cwd=self.root, env=self.env, capture_output=True, text=True,
                                 timeout=900)
            if res.returncode != 0:
                raise RuntimeError(f"{self.name}: preload exited {res.returncode}:\n{res.stderr[-3000:]}")
            out = res.stdout
        print(f"  {self.name}: {out.strip().splitlines()[-1] if out.strip() else 'history loaded'}")

    def start(self) -> None:
        self.port = _free_port()
        self.log = open(self.work / "serve.out", "wb")  # a file: an unread pipe fills up
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "action=serve", "serving=realtime", f"serving.port={self.port}",
             "serving.host=127.0.0.1", *self.common, f"hydra.run.dir={self.work / 'serve'}",
             f"paths.output_dir={self.work / 'serve'}"],
            cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        _wait_ready(self.port, self.proc, timeout=300)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def scored(answer: dict) -> list[float | None]:
    """The probability of each record of a ``/predict`` answer (None: not scored, e.g. the
    breaker's abstain)."""
    return list(answer.get("probabilities") or [])


def compare_answers(servers: list[Checkout], bodies: list[str]) -> list[float]:
    """Post ``bodies`` to every server; every answer 200 and scored. Returns the largest
    |difference| in probability between the first server and each other one, per body."""
    import httpx
    diffs = []
    for body in bodies:
        probs = []
        for srv in servers:
            r = httpx.post(f"{srv.url}/predict", content=body,
                           headers={"Content-Type": "application/json"}, timeout=30)
            if r.status_code != 200:
                raise RuntimeError(f"{srv.name}: {r.status_code} {r.text[:500]}")
            p = scored(r.json())
            if not p or any(v is None for v in p):
                raise RuntimeError(f"{srv.name}: an answer without a probability: {r.text[:500]}")
            probs.append(p)
        diffs.append(max((abs(a - b) for other in probs[1:] for a, b in zip(probs[0], other)),
                         default=0.0))
    return diffs


def ratios(before: dict, ours: dict) -> dict:
    """Throughput ours/before (above 1: ours serves more) and p99 ours/before (below 1:
    ours answers faster); within 10% means throughput >= 0.9 and p99 <= 1.1."""
    return {"throughput": ours["rps"] / before["rps"], "p99": ours["p99_ms"] / before["p99_ms"],
            "p50": ours["p50_ms"] / before["p50_ms"]}


def check_answers(name: str, st: dict) -> None:
    if st.get("2xx") is None or st["4xx"] or st["5xx"] or st["errors"]:
        raise RuntimeError(f"{name}: not every answer was 2xx: {st}")


def measure(servers: dict, lua: Path, duration: int, concurrencies: list[int], repeats: int,
            probe: str) -> dict:
    """Each side at each concurrency, interleaved; after every load both still score
    ``probe`` (a tripped breaker's abstain answers would time another path)."""
    out: dict = {}
    for conc in concurrencies:
        print(f"  concurrency {conc}:", flush=True)
        runs = []
        for rep in range(repeats):
            got = {}
            for name in ("before", "ours"):
                got[name] = servers[name].load(lua, duration, conc, warm=2 if rep == 0 else 0)
                check_answers(name, got[name])
                compare_answers([servers[name]], [probe])
                _show(f"{name} #{rep + 1}", got[name])
            r = ratios(got["before"], got["ours"])
            load = load_average()
            print(f"    ours/before #{rep + 1}: throughput {r['throughput']:.2f}x (target >= 0.9), "
                  f"p50 {r['p50']:.2f}x, p99 {r['p99']:.2f}x (target <= 1.1); load {load}", flush=True)
            runs.append({**got, "ratios": r, "load": load})
        out[conc] = runs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="the other checkout (e.g. a worktree at the previous commit)")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2000, help="distinct request bodies (the last events)")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=150)
    ap.add_argument("--json", default=None, help="append the result rows here (JSON lines)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        events_path = write_events(tmp, args.users, args.days)
        events = pl.read_parquet(events_path)
        requested, first = split_requests(events, "event_ts", args.requests)
        servers = {"before": Checkout("before", Path(args.before), tmp, events_path),
                   "ours": Checkout("ours", ROOT, tmp, events_path)}
        print(f"{events.height:,} events; {requested.height:,} requests from {first} on")
        try:
            for srv in servers.values():
                srv.prepare(first)
                srv.start()
            plan = configured_plan(servers["ours"])
            bodies = request_bodies(requested, list(plan.source_columns), plan.timestamp)
            diffs = compare_answers([servers["before"], servers["ours"]], bodies[:5])
            print(f"  first 5 records, |probability before - ours| at most {max(diffs):.3g}")
            lua = _lua(bodies, "/predict", tmp / "bodies.lua")
            print(f"HTTP /predict, one record per request, wrk -t1 -d{args.duration}s, "
                  f"before = {args.before}, ours = {ROOT}")
            found = measure(servers, lua, args.duration, args.concurrency, args.repeats, bodies[0])
        finally:
            for srv in servers.values():
                if srv.proc is not None:
                    srv.stop()
    summary(found, args, max(diffs))


def configured_plan(srv: Checkout):
    """The feature plan of ``srv``'s configuration (this checkout's code: the one trained)."""
    from hydra import compose, initialize_config_dir

    from mlops.actions.context import RunContext
    from mlops.config import register
    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config",
                      overrides=[*srv.common, f"paths.output_dir={srv.work / 'plan'}"])
    return RunContext.from_config(cfg).plan()


def summary(found: dict, args, max_diff: float) -> None:
    """The best (highest throughput) run of each side per concurrency, as table rows."""
    rows = []
    for conc, runs in found.items():
        before = max((r["before"] for r in runs), key=lambda s: s["rps"])
        ours = max((r["ours"] for r in runs), key=lambda s: s["rps"])
        r = ratios(before, ours)
        print(f"concurrency {conc}: before {before['rps']:.0f} req/s p50 {before['p50_ms']:.2f} "
              f"p99 {before['p99_ms']:.2f} ms; ours {ours['rps']:.0f} req/s p50 {ours['p50_ms']:.2f} "
              f"p99 {ours['p99_ms']:.2f} ms; throughput {r['throughput']:.2f}x, p99 {r['p99']:.2f}x")
        rows.append(Row(benchmark=f"HTTP /predict, concurrency {conc}", peer=f"ours before ({args.before})",
                        ours_s=1 / ours["rps"], peer_s=1 / before["rps"], timer="wrk, seconds per request",
                        values=f"probabilities equal within {max_diff:.3g}",
                        load=[r["load"] for r in runs],
                        note=f"p99 ours {ours['p99_ms']:.2f} ms, before {before['p99_ms']:.2f} ms"))
    emit(rows, args.json)


if __name__ == "__main__":
    main()
