"""Register + promote throughput with 1, 4 and 8 concurrent writers, SQLite vs PostgreSQL.

Each configuration starts from an empty registry and does the same work: ``--ops``
operations in total, split evenly between the writer processes, each operation one
``register`` (skops dump, content-addressed artefact written and fsynced, version row
and chain event committed) followed by one ``promote`` of that version to ``production``
(verification of the version, the chain and its artefact, alias move, chain event).
Writers are forked after the models are fitted and the registry opened; the clock runs
from the moment they are released together until the last one finishes.

SQLite: the embedded default (WAL, ``synchronous=FULL``). PostgreSQL: a private server
started here (``tests/pg_server.py``: initdb + pg_ctl, 127.0.0.1, ``fsync=on`` so a
commit is as durable as SQLite's), same machine, artefacts on the local disk for both.
Configurations are interleaved and repeated (``--repeat``); the table shows the median
of the repeats, absolute figures and the ratios (vs 1 writer on the same backend, and
PostgreSQL / SQLite at the same writer count).

    python benchmarks/bench_registry.py [--ops 48] [--repeat 3] [--writers 1,4,8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # writers are forked from a process with numpy

import numpy as np  # noqa: E402
from pg_server import PostgresServer, Unavailable  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from mlops.registry import Registry, migrations  # noqa: E402
from mlops.registry.database import open_database  # noqa: E402


def _models(n: int, offset: int) -> list:
    out = []
    for seed in range(offset, offset + n):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(60, 4))
        out.append(LogisticRegression().fit(x, (x[:, 0] + rng.normal(0, 0.5, 60) > 0).astype(int)))
    return out


def _writer(home: Path, kwargs: dict, models: list, ready_w: int, go_r: int, out_w: int) -> None:
    reg = Registry(home, **kwargs)
    reg.list_models()  # opens (and for PostgreSQL keeps) the connection before the clock starts
    os.write(ready_w, b"x")
    os.read(go_r, 1)
    latencies = []
    for i, model in enumerate(models):
        started = time.perf_counter()
        version = reg.register("bench", model, metadata={"metrics": {"i": i}, "code_version": None},
                               actor=f"w{os.getpid()}").version
        reg.promote("bench", version, "production")
        latencies.append(time.perf_counter() - started)
    os.write(out_w, (json.dumps(latencies) + "\n").encode())


def run_once(home: Path, kwargs: dict, writers: int, ops: int) -> dict:
    """One configuration: ``writers`` processes doing ``ops`` register+promote in total."""
    Registry(home, **kwargs).list_models()  # schema in place before the clock (SQLite creates it)
    per = ops // writers
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    out_r, out_w = os.pipe()
    pids = []
    for w in range(writers):
        models = _models(per, offset=1000 * w)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(go_w)
                _writer(home, kwargs, models, ready_w, go_r, out_w)
            except BaseException as exc:  # noqa: BLE001 - report, then exit the child
                print(f"writer failed: {exc!r}", file=sys.stderr)
                code = 1
            os._exit(code)
        pids.append(pid)
    os.close(ready_w)
    os.close(out_w)
    got = 0
    while got < writers:
        got += len(os.read(ready_r, writers))
    started = time.perf_counter()
    os.close(go_w)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    elapsed = time.perf_counter() - started
    with os.fdopen(out_r) as fh:
        latencies = [x for line in fh.read().splitlines() for x in json.loads(line)]
    if any(codes) or len(latencies) != per * writers:
        raise SystemExit(f"a writer failed: exit codes {codes}")
    versions = [v.version for v in Registry(home, **kwargs).list_versions("bench")]
    assert versions == list(range(1, per * writers + 1)), "versions must be gapless"
    return {"ops": per * writers, "seconds": elapsed, "ops_per_s": per * writers / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * float(np.quantile(latencies, 0.95))}


def _median_row(runs: list[dict]) -> dict:
    keys = ("seconds", "ops_per_s", "p50_ms", "p95_ms")
    return {"ops": runs[0]["ops"], **{k: statistics.median(r[k] for r in runs) for k in keys},
            "all_ops_per_s": [round(r["ops_per_s"], 1) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=48, help="register+promote operations per configuration")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writers", default="1,4,8")
    args = parser.parse_args()
    writer_counts = [int(w) for w in args.writers.split(",")]
    base = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    try:
        server = PostgresServer.start(fsync=True)
    except Unavailable as exc:
        raise SystemExit(f"cannot start PostgreSQL ({exc}); this benchmark compares both backends") from None
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        for rep in range(args.repeat):
            for writers in writer_counts:
                for backend in (("sqlite", "postgresql") if rep % 2 == 0 else ("postgresql", "sqlite")):
                    home = base / f"{backend}-{writers}-{rep}"
                    kwargs = {}
                    if backend == "postgresql":
                        url = server.create_database(f"b{writers}_{rep}")
                        migrations.migrate(open_database(url, home=home, password=server.password))
                        kwargs = {"url": url, "password": server.password}
                    run = run_once(home, kwargs, writers, args.ops)
                    results.setdefault((backend, writers), []).append(run)
                    print(f"  rep {rep} {backend:10s} {writers} writer(s): {run['ops_per_s']:6.1f} ops/s",
                          flush=True)
    finally:
        server.stop()
    _print_table({k: _median_row(v) for k, v in results.items()}, writer_counts, args)


def _print_table(rows: dict, writer_counts: list[int], args) -> None:
    print(f"\nregister + promote, {args.ops} operations per configuration, median of {args.repeat} "
          f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    print("| backend | writers | ops/s | seconds | p50 ms / op | p95 ms / op | vs 1 writer | PostgreSQL / SQLite |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in ("sqlite", "postgresql"):
        for writers in writer_counts:
            r = rows[(backend, writers)]
            scale = r["ops_per_s"] / rows[(backend, writer_counts[0])]["ops_per_s"]
            versus = r["ops_per_s"] / rows[("sqlite", writers)]["ops_per_s"]
            print(f"| {backend} | {writers} | {r['ops_per_s']:.1f} | {r['seconds']:.2f} | {r['p50_ms']:.1f} | "
                  f"{r['p95_ms']:.1f} | {scale:.2f}x | {versus:.2f}x |")
    print("\nevery run (ops/s):", {f"{b}/{w}": rows[(b, w)]["all_ops_per_s"] for b, w in rows})


if __name__ == "__main__":
    main()
