"""Tenants over HTTP: a tenant's key admits its work, its job says whose it is; other keys are refused."""

from __future__ import annotations

import io
import json

from inferq.tenants import key_digest
from tests.support.stand_in import publish_heartbeat


def tenants_file(tmp_path, *tenants: dict) -> str:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": list(tenants)}))
    return str(path)


def digest(key: str) -> str:
    return "sha256:" + key_digest(key).hex()


def files(count: int, data: bytes) -> dict:
    return {"image": [(io.BytesIO(data), f"{i}.png") for i in range(count)]}


def test_a_tenants_key_queues_its_work_and_the_job_says_whose_it_is(make_app, fake_redis, tmp_path, digit_104):
    path = tenants_file(tmp_path, {"name": "vision", "keys": [digest("k-vision")]},
                        {"name": "ads", "keys": [digest("k-ads")]})
    app, worker = make_app(tenants_file=path, api_key="s3cret")
    client = app.test_client()
    publish_heartbeat(fake_redis)
    worker.answer = False
    for key, tenant in (("k-vision", "vision"), ("k-ads", "ads"), ("s3cret", "default")):
        accepted = client.post("/jobs", data=files(2, digit_104), headers={"Authorization": f"Bearer {key}"})
        assert accepted.status_code == 202, accepted.get_json()
        job = client.get(accepted.headers["Location"], headers={"Authorization": f"Bearer {key}"}).get_json()
        assert job["tenant"] == tenant
    refused = client.post("/jobs", data=files(1, digit_104), headers={"Authorization": "Bearer k-other"})
    assert refused.status_code == 401
    assert client.get("/readyz").get_json() == {"status": "ready"}  # without a key: ready or not, no more


def test_without_keys_every_job_is_the_default_tenants(make_app, fake_redis, digit_104):
    app, worker = make_app()
    client = app.test_client()
    publish_heartbeat(fake_redis)
    worker.answer = False
    accepted = client.post("/jobs", data=files(1, digit_104))
    assert client.get(accepted.headers["Location"]).get_json()["tenant"] == "default"
