"""The peers of ``bench_features.py --only duckdb,pandas``: DuckDB SQL and pandas, each
run as its own process by this file (``python feature_peers.py ENGINE SET SRC OUT``).

This file imports nothing at the top but the standard library, so a peer's process
pays for its own imports only (DuckDB's: ``import duckdb``), as ours pays for ours
(``bench_features.py --child ours``: polars, numpy, mlops).
"""
from __future__ import annotations

import sys

# DuckDB's two ways to say [t - p, t): the frame up to the current row minus its peers
# (EXCLUDE GROUP), or a frame ending 1 microsecond before the row (timestamps are in us).
FRAMES = {"exclude": "RANGE BETWEEN INTERVAL {} PRECEDING AND CURRENT ROW EXCLUDE GROUP",
          "1us": "RANGE BETWEEN INTERVAL {} PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING"}


def duckdb_sql(source: str, window_set: str = "set1", frame: str = "1us") -> str:
    """A window set in DuckDB SQL, RANGE frames over [t - p, t) (ties excluded), writing
    the columns ours writes (the entity, the time, the id, the features)."""
    w = "(PARTITION BY user_id ORDER BY event_ts " + FRAMES[frame] + ")"
    if window_set == "set2":
        return f"""SELECT event_id, user_id, event_ts, coalesce(sum(amount) OVER w1h, 0) AS amount_sum_1h,
            CAST(count(*) OVER w1d AS DOUBLE) AS events_count_1d,
            count(DISTINCT item) OVER w30d AS item_distinct_30d
          FROM {source}
          WINDOW w1h AS {w.format("1 HOUR")}, w1d AS {w.format("1 DAY")}, w30d AS {w.format("30 DAY")}"""
    return f"""SELECT *, amount / (amount_mean_30d + 1) AS ratio_30d,
        amount_sum_1h / (amount_sum_30d + 1) AS burst
      FROM (SELECT event_id, user_id, event_ts, amount,
        coalesce(sum(amount) OVER w1h, 0) AS amount_sum_1h, avg(amount) OVER w1h AS amount_mean_1h,
        coalesce(sum(amount) OVER w30d, 0) AS amount_sum_30d, avg(amount) OVER w30d AS amount_mean_30d,
        CAST(count(*) OVER w1d AS DOUBLE) AS events_count_1d, max(amount) OVER w1d AS amount_max_1d
      FROM {source}
      WINDOW w1h AS {w.format("1 HOUR")}, w30d AS {w.format("30 DAY")}, w1d AS {w.format("1 DAY")})"""


def pandas_file(src: str, out: str) -> None:
    """Set 1 with pandas ``groupby().rolling(closed='left')``, parquet in and out."""
    import pandas as pd
    p = pd.read_parquet(src).sort_values(["user_id", "event_ts"], kind="stable")
    g = p.set_index("event_ts").groupby("user_id", sort=False)["amount"]
    res = pd.DataFrame({"event_id": p["event_id"].to_numpy()})
    for period, name, aggs in (("1h", "1h", ("sum", "mean")), ("30D", "30d", ("sum", "mean")),
                               ("1D", "1d", ("count", "max"))):
        r = g.rolling(period, closed="left")
        for a in aggs:
            col = "events_count_1d" if a == "count" else f"amount_{a}_{name}"
            res[col] = getattr(r, a)().to_numpy()
    for c in ("amount_sum_1h", "amount_sum_30d", "events_count_1d"):
        res[c] = res[c].fillna(0.0)
    res["ratio_30d"] = p["amount"].to_numpy() / (res["amount_mean_30d"] + 1)
    res["burst"] = res["amount_sum_1h"] / (res["amount_sum_30d"] + 1)
    res.to_parquet(out)


def child(engine: str, window_set: str, src: str, out: str) -> None:
    """One peer in this fresh process: parquet in, zstd parquet out (timed from outside)."""
    if engine == "pandas":
        pandas_file(src, out)
        return
    import duckdb
    con = duckdb.connect()
    # DuckDB's performance guide: no insertion order to keep lets operators run in parallel
    con.execute("SET preserve_insertion_order = false")
    sql = duckdb_sql(f"read_parquet({src!r})", window_set, engine.split("-", 1)[1])
    con.execute(f"COPY ({sql}) TO {out!r} (FORMAT parquet, COMPRESSION zstd)")


if __name__ == "__main__":
    child(*sys.argv[1:5])
