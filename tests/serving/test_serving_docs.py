"""/docs works without network, /openapi.json describes the plan, the serving page's curl examples run."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serving_world import free_port
from support import wait_until_healthy

from mlops.serving.http.app import create_app

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
_JSON_TYPE = {"number": "number", "string": "string", "entity": "string", "datetime": "string"}


def test_openapi_schemas_come_from_the_plan_and_their_examples_are_valid(world, make_state):
    state = make_state()
    with TestClient(create_app(state)) as client:
        doc = client.get("/openapi.json").json()
        schemas = doc["components"]["schemas"]
        record = schemas["Record"]
        kinds = state.request_schema.kinds
        # every source column of the plan, with its JSON type, and nothing invented
        assert set(record["properties"]) == set(kinds) | {"request_id"}
        for col, kind in kinds.items():
            assert record["properties"][col]["type"] == _JSON_TYPE[kind], col
        assert record["properties"][world.plan.timestamp]["format"] == "date-time"
        assert set(record["required"]) == set(kinds) - {world.plan.timestamp}
        op = doc["paths"]["/predict"]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"] \
            == "#/components/schemas/PredictRequest"
        assert {"200", "422"} <= set(op["responses"])
        # the documented examples are accepted, and answers match the response schema
        r = client.post("/predict", json=schemas["PredictRequest"]["example"])
        assert r.status_code == 200, r.text
        resp = schemas["PredictResponse"]
        assert set(resp["required"]) <= set(r.json()) <= set(resp["properties"])
        inv = client.post("/invocations", json=schemas["InvocationsRequest"]["example"])
        assert inv.status_code == 200 and len(inv.json()["predictions"]) == 1
        # a record missing a required field is the documented 422
        bad = dict(schemas["Record"]["example"])
        bad.pop(world.plan.entity)
        r = client.post("/predict", json={"records": [bad]})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == world.plan.entity


def test_docs_page_loads_its_assets_locally(make_state):
    with TestClient(create_app(make_state())) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert urls and all(u.startswith("/") for u in urls), urls  # no CDN
        for u in urls:
            asset = client.get(u)
            assert asset.status_code == 200 and len(asset.content) > 100, u
        assert "url: '/openapi.json'" in page.text


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    err = open(tmp_path / "server.stderr", "wb")  # a file: an unread pipe can fill up
    proc = subprocess.Popen([sys.executable, str(HERE / "serving_server_main.py"), str(port),
                             str(tmp_path)], env=env, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc, output=lambda: (tmp_path / "server.stderr").read_text())
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def readme_curls() -> list[str]:
    """``curl`` commands of the docs' serving page (its first part) (continuation lines joined)."""
    section = (ROOT / "docs" / "concepts" / "serving.md").read_text().split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for cmd in block.replace("\\\n", " ").splitlines():
            if cmd.strip().startswith("curl "):
                cmds.append(cmd.strip())
    return cmds


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples_run_against_a_server(server):
    cmds = readme_curls()
    assert len(cmds) >= 3, "the README's Serving section lost its curl examples"
    for cmd in cmds:
        argv = [a.replace("127.0.0.1:8080", f"127.0.0.1:{server}") for a in shlex.split(cmd)]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
        url = next(a for a in argv if a.startswith("http://"))
        if url.endswith("/metrics"):
            assert "mlops_http_requests_total" in res.stdout
        else:
            body = json.loads(res.stdout)
            if url.endswith("/predict"):
                assert body["request_ids"] == ["tx-1"] and 0 <= body["probabilities"][0] <= 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_swagger_ui_renders_every_endpoint_in_a_browser(server, tmp_path):
    """The page really renders offline: a headless browser lists the operations."""
    res = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          "--virtual-time-budget=8000", f"http://127.0.0.1:{server}/docs"],
                         capture_output=True, text=True, timeout=90)
    paths = set(re.findall(r'opblock-summary-path" data-path="([^"]+)"', res.stdout))
    assert {"/predict", "/invocations", "/health", "/metrics"} <= paths, res.stdout[-2000:]
