"""Write a ready user project folder for a real data set, with an optional injected shift.

    python benchmarks/alarms_project.py /tmp/storms                       # as the data are
    python benchmarks/alarms_project.py /tmp/storms --shift both --at 2013-01-01
    cd /tmp/storms && mlops action=features && mlops action=train

The folder is what ``mlops init`` writes, for ``storms`` (regression, the default) or
``flights`` (classification): ``conf/project.yaml``, ``conf/data/<name>.yaml``,
``conf/features/<name>.yaml`` and ``data/<name>.csv``. ``--shift inputs|labels|both``
changes the events from ``--at`` on (default: the data set's ``shift_at``) as
``alarms_shift`` describes; the training period is never touched.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alarms_data import DATASETS, DataSet  # noqa: E402
from alarms_shift import scenario_frame  # noqa: E402

PROJECT_YAML = """\
# @package _global_
# {title}
defaults:
  - override /data: {name}
  - override /features: {name}
  - override /model: {model}
  - _self_

model:
  name: {name}_{task}
paths:
  home: .mlops
training:                     # train {t0} .. {t1}, validate .. {t2}, test .. {t3}
  start: "{t0}"
  train_days: {train_days}
  valid_days: {valid_days}
  test_days: {test_days}
monitoring:
  window: {{days: {window_days}, detector_burn_in_days: {window_days}}}
  performance: {{chunk: {window_days}d}}
  reference: {reference}
serving:
  breaker: {{reference: {breaker_reference}}}
registry:
  approvers: {{}}
  policies:
    production:
      - {{metric: leakage_suspected, max: 0}}
      - {gate}
"""

DATA_YAML = """\
defaults:
  - files_schema
  - _self_

path: data/{name}.csv
event_id: {event_id}
"""


def features_yaml(ds: DataSet) -> str:
    """The feature spec, as a user would write it (flow style, one item per line)."""
    def flow(d: dict) -> str:
        return json.dumps(d).replace('"', "")
    lines = ["defaults:", "  - feature_spec_schema", "  - _self_", "",
             f"name: {ds.name}", f"entity: {ds.entity}", f"timestamp: {ds.timestamp}",
             f"label: {{column: {ds.label}}}", f"raw: [{', '.join(ds.raw)}]",
             f"categorical: [{', '.join(ds.categorical)}]", "windows:"]
    lines += [f"  - {flow(w)}" for w in ds.windows]
    lines += ["derived:" + (" []" if not ds.derived else "")]
    lines += [f'  - {{name: {d["name"]}, expr: "{d["expr"]}"}}' for d in ds.derived]
    return "\n".join(lines) + "\n"


def project_yaml(ds: DataSet) -> str:
    t0, t1, t2, t3 = ds.dates()
    gate = "{" + ", ".join(f"{k}: {v}" for k, v in ds.gate.items()) + "}"
    return PROJECT_YAML.format(
        title=f"{ds.name}: {ds.task} of {ds.label!r} per {ds.entity!r} (benchmarks/alarms_data.py)",
        name=ds.name, model=ds.model, task=ds.task, t0=t0.date(), t1=t1.date(), t2=t2.date(),
        t3=t3.date(), train_days=(t1 - t0).days, valid_days=(t2 - t1).days,
        test_days=(t3 - t2).days, window_days=365 if ds.window == "year" else 7, gate=gate,
        reference=ds.reference, breaker_reference=ds.breaker_reference)


def reference_rows(ds: DataSet, events: pl.DataFrame) -> pl.DataFrame:
    """The training period's events: the drift reference and the shifts' yardstick."""
    t0, t1 = ds.dates()[:2]
    return events.filter((pl.col(ds.timestamp) >= t0) & (pl.col(ds.timestamp) < t1))


def shifted_events(ds: DataSet, events: pl.DataFrame, shift: str, at: datetime,
                   size: float | None = None) -> pl.DataFrame:
    """``events`` with the shift applied from ``at`` (``both``: inputs, then labels); ``size``
    replaces the data set's input shift (in reference standard deviations)."""
    ref = reference_rows(ds, events)
    inputs = ds.inputs_shift if size is None else {c: float(size) for c in ds.inputs_shift}
    out = events
    for scenario in (("inputs", "labels") if shift == "both" else (shift,)):
        out = scenario_frame(out, scenario, at=at, timestamp=ds.timestamp, label=ds.label,
                             inputs=inputs, labels=ds.labels_shift, reference=ref)
    return out


def write_project(target: Path, ds: DataSet, *, shift: str = "none",
                  at: datetime | None = None, size: float | None = None) -> list[Path]:
    """Write the project folder (as ``mlops init`` lays one out); returns the files written."""
    at = at or datetime.fromisoformat(ds.shift_at)
    texts = {"conf/project.yaml": project_yaml(ds),
             f"conf/data/{ds.name}.yaml": DATA_YAML.format(name=ds.name, event_id=ds.event_id),
             f"conf/features/{ds.name}.yaml": features_yaml(ds)}
    paths = [target / rel for rel in [*texts, f"data/{ds.name}.csv"]]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in zip(paths, texts.values()):
        path.write_text(text)
    shifted_events(ds, ds.load(), shift, at, size).write_csv(paths[-1])
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", type=Path)
    ap.add_argument("--data", choices=sorted(DATASETS), default="storms")
    ap.add_argument("--shift", choices=["none", "inputs", "labels", "both"], default="none")
    ap.add_argument("--at", type=datetime.fromisoformat, default=None,
                    help="ISO date the shift starts (default: the data set's shift_at)")
    ap.add_argument("--size", type=float, default=None,
                    help="input shift in reference standard deviations (default: the data set's, as the bench)")
    args = ap.parse_args(argv)
    ds = DATASETS[args.data]
    for path in write_project(args.target.resolve(), ds, shift=args.shift, at=args.at, size=args.size):
        print(f"wrote {path}")
    print(f"next: cd {args.target} && mlops action=features && mlops action=train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
