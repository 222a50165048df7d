"""The peers' side of ``bench_alarms.py``: NannyML and Evidently at their default settings.

Runs in the peers' own virtualenv (their pandas/numpy pins conflict with ours), started by
``bench_alarms.py`` as a subprocess:

    python alarms_peers.py ROWS.parquet SPEC.json OUT.json

``ROWS.parquet`` holds the rows our monitor sees (features, label, the model's
``prediction``, ``__part``: ``reference`` (the training period), ``perf_reference`` (the
validation and test periods, the model's out-of-sample predictions) or ``analysis``, and
``__window``). Per peer and window, ``OUT.json`` says whether its default judgment fired:

- NannyML: ``UnivariateDriftCalculator`` with its default methods and thresholds, chunked
  by the windows' period (a window alarms when any column alerts, NannyML's alert);
  ``PerformanceCalculator`` on our metric with its default thresholds (3 standard
  deviations of the reference chunks).
- Evidently: ``DataDriftPreset`` with its tests (the share of drifted columns below 0.5);
  ``RegressionPreset`` / ``ClassificationPreset`` with their tests generated from the
  reference: the test on our metric (RMSE or ROC AUC) failing is the alarm.
A peer that is not installed is skipped with its reason.
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings

# no usage telemetry from the peers (both send it by default; this machine has no network)
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


def _frames(rows_path: str, spec: dict):
    import pandas as pd
    df = pd.read_parquet(rows_path)
    for c in spec["categorical"]:
        df[c] = df[c].astype("string").fillna("<null>").astype(str)
    if spec["task"] == "classification":
        df["__y_pred"] = (df["prediction"] >= spec["threshold"]).astype(int)
        df[spec["label"]] = df[spec["label"]].astype(int)
    parts = {p: df[df["__part"] == p].copy() for p in ("reference", "perf_reference", "analysis")}
    return parts


def _by_window(chunks, windows: list, column) -> list:
    """Chunk results (start date -> alert) mapped onto the windows (None: no chunk)."""
    import pandas as pd
    found = {pd.Timestamp(s).normalize(): bool(a) for s, a in zip(chunks["start"], column)}
    return [found.get(pd.Timestamp(lo).normalize()) for lo, _ in windows]


def _text(threshold) -> str:
    """A NannyML threshold in words (its ``__str__`` recurses forever in 0.13)."""
    return repr(threshold).split(", 'offset_from'")[0].rstrip("}") + "}"


def nannyml_judgments(parts: dict, spec: dict) -> dict:
    import nannyml as nml
    ts, features, period = spec["timestamp"], spec["features"], spec["period"]
    drift = nml.UnivariateDriftCalculator(
        column_names=features, treat_as_categorical=spec["categorical"] or None,
        timestamp_column_name=ts, chunk_period=period)
    drift.fit(parts["reference"])
    res = drift.calculate(parts["analysis"]).filter(period="analysis").to_df()
    alerts = res[[c for c in res.columns if c[-1] == "alert"]].any(axis=1)
    chunks = {"start": res[("chunk", "chunk", "start_date")]}
    metric = spec["metric"]
    kwargs = ({"y_pred": "prediction", "problem_type": "regression"} if spec["task"] == "regression"
              else {"y_pred": "__y_pred", "y_pred_proba": "prediction",
                    "problem_type": "classification_binary"})
    perf = nml.PerformanceCalculator(metrics=[metric], y_true=spec["label"], timestamp_column_name=ts,
                                     chunk_period=period, **kwargs)
    perf.fit(parts["perf_reference"])
    pres = perf.calculate(parts["analysis"]).filter(period="analysis").to_df()
    return {"version": nml.__version__,
            "settings": {"drift_methods": {"continuous": drift.continuous_method_names,
                                           "categorical": drift.categorical_method_names},
                         "drift_thresholds": {k: _text(v) for k, v in drift.thresholds.items()},
                         "performance": f"{metric}, {_text(perf.thresholds[metric])}"},
            "data_drift": _by_window(chunks, spec["windows"], alerts),
            "concept_drift": _by_window({"start": pres[("chunk", "start_date")]}, spec["windows"],
                                        pres[(metric, "alert")])}


EVIDENTLY_METRIC = {"rmse": "RMSE", "roc_auc": "RocAuc"}


def _evidently_tests(report, reference, current, definition) -> list[dict]:
    from evidently import Dataset
    snap = report.run(Dataset.from_pandas(current, data_definition=definition),
                      Dataset.from_pandas(reference, data_definition=definition))
    return snap.dict()["tests"]


def evidently_judgments(parts: dict, spec: dict) -> dict:
    import evidently
    from evidently import BinaryClassification, DataDefinition, Regression, Report
    from evidently.presets import ClassificationPreset, DataDriftPreset, RegressionPreset
    cat = list(spec["categorical"])
    num = [c for c in spec["features"] if c not in cat]
    drift_def = DataDefinition(numerical_columns=num, categorical_columns=cat)
    if spec["task"] == "regression":
        perf_def = DataDefinition(numerical_columns=[spec["label"], "prediction"],
                                  regression=[Regression(target=spec["label"], prediction="prediction")])
        preset = RegressionPreset
    else:
        perf_def = DataDefinition(numerical_columns=["prediction"], categorical_columns=[spec["label"]],
                                  classification=[BinaryClassification(target=spec["label"],
                                                                       prediction_probas="prediction")])
        preset = ClassificationPreset
    metric_type = f"evidently:metric_v2:{EVIDENTLY_METRIC[spec['metric']]}"
    cols = spec["features"]
    data, concept = [], []
    analysis = parts["analysis"]
    for i, _ in enumerate(spec["windows"]):
        cur = analysis[analysis["__window"] == i]
        if cur.empty:
            data.append(None)
            concept.append(None)
            continue
        tests = _evidently_tests(Report([DataDriftPreset()], include_tests=True),
                                 parts["reference"][cols], cur[cols], drift_def)
        data.append(any(t["status"] == "FAIL" for t in tests
                        if t["metric_config"]["params"]["type"].endswith("DriftedColumnsCount")))
        ptests = _evidently_tests(Report([preset()], include_tests=True),
                                  parts["perf_reference"][[spec["label"], "prediction"]],
                                  cur[[spec["label"], "prediction"]], perf_def)
        mine = [t for t in ptests if t["metric_config"]["params"]["type"] == metric_type]
        concept.append(any(t["status"] == "FAIL" for t in mine) if mine else None)
    return {"version": evidently.__version__,
            "settings": {"data_drift": "DataDriftPreset(): share of drifted columns < 0.5 test",
                         "performance": f"{preset.__name__} test on {EVIDENTLY_METRIC[spec['metric']]}"},
            "data_drift": data, "concept_drift": concept}


PEERS = {"nannyml": nannyml_judgments, "evidently": evidently_judgments}


def main(argv: list[str]) -> int:
    rows_path, spec_path, out_path = argv
    spec = json.loads(open(spec_path).read())
    warnings.filterwarnings("ignore")
    parts = _frames(rows_path, spec)
    out = {}
    for name, fn in PEERS.items():
        t0 = time.perf_counter()
        try:
            __import__(name)
        except ImportError as exc:
            out[name] = {"skipped": f"{name} is not installed here ({exc})"}
            continue
        out[name] = fn(parts, spec)
        out[name]["seconds"] = round(time.perf_counter() - t0, 2)
    with open(out_path, "w") as fh:
        json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
