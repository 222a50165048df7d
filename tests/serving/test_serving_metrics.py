"""/metrics through prometheus_client: declared once, one registry per app, multi-process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from serving_world import record

from mlops.serving.http.app import create_app
from mlops.serving.metrics import ServingMetrics

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def recs(world):
    return [record(r, world.plan) for r in world.events.slice(200, 20).to_dicts()]


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_and_each_is_declared_once(make_state, recs):
    state = make_state(log=True)
    with TestClient(create_app(state)) as client:
        client.post("/predict", json={"records": recs[:5]})
        client.post("/predict", json={"records": recs[5:7]})
        client.post("/predict", json={"records": [{}]})
        r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    types = [ln.split()[2] for ln in r.text.splitlines() if ln.startswith("# TYPE")]
    assert len(types) == len(set(types))  # one declaration per metric
    fam = _families(r.text)
    reqs = {(s.labels["path"], s.labels["status"]): s.value
            for s in fam["mlops_http_requests"].samples if s.name.endswith("_total")}
    assert reqs[("/predict", "200")] == 2 and reqs[("/predict", "422")] == 1
    preds = [s for s in fam["mlops_predictions"].samples if s.name.endswith("_total")]
    assert [(s.labels, s.value) for s in preds] == [({"served_by": "model"}, 7.0)]
    batch = {s.name: s.value for s in fam["mlops_batch_records"].samples}
    assert batch["mlops_batch_records_sum"] == 7.0  # records over every micro-batch
    assert fam["mlops_prediction_log_commits"].samples[0].value >= 1


def test_two_apps_in_one_process_do_not_share_metrics(make_state, recs):
    a, b = make_state(), make_state()
    with TestClient(create_app(a)) as ca, TestClient(create_app(b)) as cb:
        ca.post("/predict", json={"records": recs[:3]})
        assert a.metrics.value("mlops_predictions_total", served_by="model") == 3.0
        assert b.metrics.value("mlops_predictions_total", served_by="model") is None
        cb.get("/health")


_WORKER = """
import sys
from mlops.serving.metrics import ServingMetrics
m = ServingMetrics()
m.predictions.labels(served_by="model").inc(int(sys.argv[1]))
m.breaker_tripped.set(float(sys.argv[2]))
if sys.argv[3] == "render":
    sys.stdout.write(m.render().decode())
"""


def test_multiprocess_mode_sums_the_workers(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: each worker writes its samples; /metrics adds them up."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n, tripped in ((3, 0), (4, 1)):
        subprocess.run([sys.executable, "-c", _WORKER, str(n), str(tripped), "-"], env=env,
                       check=True)
    out = subprocess.run([sys.executable, "-c", _WORKER, "5", "0", "render"], env=env,
                         check=True, capture_output=True, text=True).stdout
    fam = _families(out)
    total = [s.value for s in fam["mlops_predictions"].samples if s.name.endswith("_total")]
    assert total == [12.0]  # 3 + 4 + 5 across three processes
    assert max(s.value for s in fam["mlops_breaker_tripped"].samples) == 1.0


def test_undeclared_names_are_refused():
    m = ServingMetrics()
    try:
        m.counter("mlops_typo_total")
    except KeyError as exc:
        assert "declare it there once" in str(exc)
    else:
        raise AssertionError("an undeclared metric name was accepted")
