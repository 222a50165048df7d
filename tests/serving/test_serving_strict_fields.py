"""Strict requests by default (issue 22): a record field that is not a source column,
``request_id`` or the event id is a 422 naming it and the expected fields; a non-string
``request_id`` is a 422 (never replaced by a generated id); ``serving.unknown_fields=ignore``
drops unknown fields; the OpenAPI schema says the same."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from serving_world import record

from mlops.errors import ConfigError
from mlops.serving.http.app import create_app
from mlops.serving.settings import ServingSettings


@pytest.fixture
def recs(world):
    return [record(r, world.plan) for r in world.events.slice(300, 3).to_dicts()]


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_unknown_field_is_422_naming_it_and_the_expected_fields(make_state, world, recs, mode):
    with TestClient(create_app(make_state(mode=mode)), raise_server_exceptions=False) as client:
        r = client.post("/predict", json={"records": [recs[0], {**recs[1], "obs_id": "o-1"}]})
        assert r.status_code == 422, r.text
        [detail] = r.json()["detail"]
        assert detail["loc"] == ["records", 1, "obs_id"] and detail["type"] == "extra_forbidden"
        assert "'obs_id'" in detail["msg"] and "serving.unknown_fields=ignore" in detail["msg"]
        for name in (*world.plan.source_columns, "request_id"):
            assert name in detail["msg"]


def test_ignore_drops_unknown_fields_and_scores_as_without_them(make_state, recs):
    extra = [{**rec, "obs_id": f"o-{i}", "note": {"any": "thing"}} for i, rec in enumerate(recs)]
    with TestClient(create_app(make_state(unknown_fields="ignore"))) as client:
        with_extra = client.post("/predict", json={"records": extra})
    with TestClient(create_app(make_state())) as client:
        plain = client.post("/predict", json={"records": recs})
    assert with_extra.status_code == plain.status_code == 200, with_extra.text
    assert with_extra.json()["probabilities"] == plain.json()["probabilities"]


@pytest.mark.parametrize("rid", [7, 1.5, True, ["a"], {"id": "a"}])
def test_non_string_request_id_is_422_never_replaced(make_state, recs, rid):
    with TestClient(create_app(make_state()), raise_server_exceptions=False) as client:
        r = client.post("/predict", json={"records": [{**recs[0], "request_id": rid}]})
        assert r.status_code == 422, r.text
        [detail] = r.json()["detail"]
        assert detail["loc"] == ["records", 0, "request_id"] and "must be a string" in detail["msg"]
        ok = client.post("/predict", json={"records": [{**recs[0], "request_id": "tx-9"}]})
        assert ok.status_code == 200 and ok.json()["request_ids"] == ["tx-9"]
        none = client.post("/predict", json={"records": [{**recs[0], "request_id": None}]})
        assert none.status_code == 200 and len(none.json()["request_ids"][0]) == 32  # generated


def test_event_id_field_is_expected_not_unknown(make_state, world, recs):
    rec = {**recs[0], "transaction_id": "t-42"}
    with TestClient(create_app(make_state(event_id="transaction_id"))) as client:
        assert client.post("/predict", json={"records": [rec]}).status_code == 200


@pytest.mark.parametrize("policy,closed", [("reject", True), ("ignore", False)])
def test_openapi_record_schema_says_the_same(make_state, world, policy, closed):
    with TestClient(create_app(make_state(unknown_fields=policy, event_id="transaction_id"))) as c:
        record_schema = c.get("/openapi.json").json()["components"]["schemas"]["Record"]
    assert record_schema["additionalProperties"] is (not closed)
    assert record_schema["properties"]["request_id"]["type"] == "string"
    assert "transaction_id" in record_schema["properties"]
    assert set(record_schema["properties"]) == {*world.plan.source_columns, "request_id",
                                                "transaction_id"}
    assert ("422" in record_schema.get("description", "")) is closed


def test_the_setting_is_checked():
    ServingSettings(unknown_fields="ignore").validate()
    with pytest.raises(ConfigError, match="serving.unknown_fields"):
        ServingSettings(unknown_fields="allow").validate()
