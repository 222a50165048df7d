"""Scaling: sharded scoring on 2 local workers vs 1, peak memory vs input size, Ray vs joblib.

Everything runs through the real CLI (``python run.py``) in subprocesses, as a user
would; ratios are measured in the same run.

    python benchmarks/bench_scale.py                    # all three (~5 min)
    python benchmarks/bench_scale.py --only memory --base-users 20000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops.data.synthetic import SyntheticParams, generate  # noqa: E402

PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
        "stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def cli(args: list[str], home: Path, cwd: Path, *, peak: bool = False) -> tuple[float, int | None]:
    env = {**os.environ, "MLOPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "run.py"), *args]
    t = time.perf_counter()
    if peak:
        out = subprocess.run([sys.executable, "-c", PEAK, *cmd], env=env, cwd=cwd, check=True,
                             capture_output=True, text=True)
        return time.perf_counter() - t, int(out.stdout.strip().splitlines()[-1]) // 1024
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t, None


def events_file(tmp: Path, users: int) -> tuple[Path, int]:
    path = tmp / f"events_{users}.parquet"
    if not path.exists():
        df = generate(SyntheticParams(n_users=users, days=150, seed=3))
        df.write_parquet(path)
    import polars as pl
    return path, pl.scan_parquet(path).select(pl.len()).collect().item()


def setup_model(tmp: Path) -> Path:
    home = tmp / "home"
    for args in (["action=train", "data.n_users=1500"],
                 ["action=approve", "registry.version=1", "registry.approver=bench"],
                 ["action=promote", "registry.version=1"]):
        cli(args, home, tmp)
    return home


def bench_shards(tmp: Path, home: Path, users: int) -> None:
    path, rows = events_file(tmp, users)
    one, _ = cli(["action=score", f"serving.input={path}"], home, tmp)
    two, _ = cli(["-m", "action=score", f"serving.input={path}", "serving.num_shards=2",
                  "serving.shard=0,1", "hydra/launcher=local_parallel",
                  f"hydra.sweep.dir={tmp / 'shards'}"], home, tmp)
    print(f"sharded scoring of {rows:,} events (process start-up included):")
    print(f"  1 worker  {one:6.1f} s")
    print(f"  2 workers {two:6.1f} s   speed-up {one / two:.2f}x on 2 cores")


def bench_memory(tmp: Path, home: Path, base_users: int) -> None:
    print("peak RSS of action=score (parquet in, predictions parquet out, 1M-row partitions):")
    print(f"  {'input':>7} {'events':>11} {'seconds':>8} {'peak MB':>8} {'MB per 1M events':>17}")
    for mult in (1, 2, 4):
        path, rows = events_file(tmp, base_users * mult)
        secs, mb = cli(["action=score", f"serving.input={path}"], home, tmp, peak=True)
        print(f"  {mult:>6}x {rows:>11,} {secs:>8.1f} {mb:>8,} {mb / rows * 1e6:>17,.0f}")


def bench_ray(tmp: Path) -> None:
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
    except ImportError:
        print("ray: hydra-ray-launcher not installed (pip install -e '.[scale]'); skipped")
        return
    boards = {}
    for launcher in ("local_parallel", "ray_cluster"):
        sweep = tmp / f"sweep_{launcher}"
        t, _ = cli(["-m", "action=train", "data.n_users=400", "data.days=110",
                    "model=logreg,hgb", "features=fraud_v1,fraud_v2", "model.params.max_iter=60",
                    f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"],
                   tmp / f"home_{launcher}", tmp)
        report = json.loads((sweep / "sweep.json").read_text())
        boards[launcher] = sorted((" ".join(sorted(j["overrides"])), j["status"],
                                   round(j["objective"], 12)) for j in report["jobs"])
        print(f"  {launcher:15} 4 jobs in {t:5.1f} s, statuses "
              f"{sorted({j['status'] for j in report['jobs']})}")
    same = boards["local_parallel"] == boards["ray_cluster"]
    print(f"ray leaderboard == joblib leaderboard: {same}")
    if not same:
        raise SystemExit("leaderboards differ")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["shards", "memory", "ray"])
    ap.add_argument("--users", type=int, default=20_000, help="shards: ~54 events per user")
    ap.add_argument("--base-users", type=int, default=20_000, help="memory: 1x input")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        home = setup_model(tmp) if a.only in (None, "shards", "memory") else None
        if a.only in (None, "shards"):
            bench_shards(tmp, home, a.users)
        if a.only in (None, "memory"):
            bench_memory(tmp, home, a.base_users)
        if a.only in (None, "ray"):
            bench_ray(tmp)


if __name__ == "__main__":
    main()
