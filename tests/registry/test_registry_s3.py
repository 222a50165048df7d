"""Artefacts in S3 (registry.artifacts=s3://bucket/prefix) against moto's S3 server on
127.0.0.1 (``pip install 'moto[server]'``; skipped with one line without it; CI does not
install it, so this runs where moto is installed; no real AWS is ever contacted)."""
from __future__ import annotations

import json

import pytest
from pg_server import free_port

from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry
from mlops.registry.artifacts import sha256_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_endpoint():
    boto3 = pytest.importorskip("boto3", reason="boto3 is not installed (pip install -e '.[s3]')")
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto[server] is not installed (pip install 'moto[server]'): S3 store tests skipped")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="team-models")
        yield endpoint, boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    server.stop()


def test_register_load_verify_and_gc_in_s3(tmp_path, logreg, tiny_xy, s3_endpoint, monkeypatch):
    endpoint, client = s3_endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    settings = {"endpoint_url": endpoint, "region": "us-east-1"}
    reg = Registry(tmp_path / "home", artifacts="s3://team-models/reg", s3=settings)
    ref = tmp_path / "reference.json"
    ref.write_text(json.dumps({"bins": [1, 2, 3]}))
    mv = reg.register("fraud", logreg, metadata={}, reference_file=ref, actor="bob")
    assert str(mv.artifact_path) == f"s3://team-models/reg/{mv.artifact_sha256[:2]}/{mv.artifact_sha256}.skops"
    model, _ = reg.load_model("fraud", 1, trusted=DEFAULT_TRUSTED_TYPES)
    x, _ = tiny_xy
    assert (model.predict_proba(x) == logreg.predict_proba(x)).all()
    local = reg.reference_path("fraud", 1)  # downloaded, verified, into the private cache
    assert local.read_bytes() == ref.read_bytes() and local.is_relative_to(tmp_path / "home" / "registry" / "cache")
    assert reg.verify()["ok"] and reg.verify()["notes"] == []
    assert not (tmp_path / "home" / "registry" / "artifacts").exists()  # nothing local but the cache

    stray = b"uploaded by a registration that was killed before its row"
    client.put_object(Bucket="team-models", Key=f"reg/ab/{sha256_bytes(stray)}.skops", Body=stray)
    report = reg.verify()
    assert report["ok"] and [n["kind"] for n in report["notes"]] == ["interrupted_write"]
    assert reg.gc_orphans(min_age_seconds=0) == [f"s3://team-models/reg/ab/{sha256_bytes(stray)}.skops"]
    assert reg.verify()["notes"] == []

    key = f"reg/{mv.artifact_sha256[:2]}/{mv.artifact_sha256}.skops"
    client.put_object(Bucket="team-models", Key=key, Body=b"swapped")
    report = reg.verify()
    assert not report["ok"] and [p["kind"] for p in report["problems"]] == ["artifact"]
    with pytest.raises(Exception, match="sha256"):
        reg.load_model("fraud", 1, trusted=DEFAULT_TRUSTED_TYPES)
    client.delete_object(Bucket="team-models", Key=key)
    assert "missing" in reg.verify()["problems"][0]["problem"]


def test_s3_through_the_cli(tmp_path, logreg, s3_endpoint, run_action, monkeypatch):
    endpoint, _ = s3_endpoint
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    s3 = ["registry.artifacts=s3://team-models/cli", f"registry.s3.endpoint_url={endpoint}",
          "registry.s3.region=us-east-1"]
    reg = Registry(tmp_path / "home", artifacts="s3://team-models/cli",
                   s3={"endpoint_url": endpoint, "region": "us-east-1"})
    reg.register("fraud_detector", logreg, metadata={}, actor="bob")
    code, d = run_action("action=verify", *s3, out="v")
    assert code == 0 and json.loads((d / "verify.json").read_text())["registry"]["artifacts"] == \
        "s3://team-models/cli/"
    code, d = run_action("action=verify", "registry.artifacts=s3://team-models/cli",
                         "registry.s3.endpoint_url=http://127.0.0.1:1", "registry.s3.region=us-east-1", out="down")
    assert code == 2 and "registry.artifacts" in json.loads((d / "result.json").read_text())["error"]
