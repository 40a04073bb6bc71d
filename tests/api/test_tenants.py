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


def test_a_tenant_over_its_quota_gets_429_with_retry_after_from_its_own_drain(make_app, fake_redis, tmp_path,
                                                                             digit_104):
    import orjson

    from inferq import keys
    path = tenants_file(tmp_path, {"name": "small", "max_queued_items": 4, "keys": [digest("k-small")]},
                        {"name": "big", "keys": [digest("k-big")]})
    app, worker = make_app(tenants_file=path)
    client = app.test_client()
    publish_heartbeat(fake_redis)
    worker.answer = False
    small, big = {"Authorization": "Bearer k-small"}, {"Authorization": "Bearer k-big"}
    assert client.post("/jobs", data=files(3, digit_104), headers=small).status_code == 202
    refused = client.post("/jobs", data=files(3, digit_104), headers=small)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"  # no rate measured yet
    assert refused.get_json()["reason"] == "tenant_quota" and refused.get_json()["tenant"] == "small"
    # 3 queued + 3 asked - 4 allowed = 2 items to drain, at a quarter of an item a second: 8 s; the
    # lane's own rate is not the tenant's.
    fake_redis.set(keys.tenant_drain_rate("small"), orjson.dumps({"images_per_s": 0.25, "measured_at": 0}))
    fake_redis.set(keys.drain_rate("mnist"), orjson.dumps({"images_per_s": 1000, "measured_at": 0}))
    assert client.post("/jobs", data=files(3, digit_104), headers=small).headers["Retry-After"] == "8"
    assert client.post("/jobs", data=files(8, digit_104), headers=big).status_code == 202
    worker.answer = True
    recognized = client.post("/recognize", data=files(1, digit_104), headers=small)
    assert recognized.status_code == 200, recognized.get_json()  # a sync request fits its last item


def test_a_tenant_over_its_rate_gets_429_with_retry_after_from_its_bucket(make_app, fake_redis, tmp_path,
                                                                          digit_104):
    path = tenants_file(tmp_path, {"name": "slow", "max_items_per_s": 0.25, "keys": [digest("k-slow")]})
    app, worker = make_app(tenants_file=path)
    client = app.test_client()
    publish_heartbeat(fake_redis)
    worker.answer = False
    slow = {"Authorization": "Bearer k-slow"}
    assert client.post("/jobs", data=files(2, digit_104), headers=slow).status_code == 202
    refused = client.post("/jobs", data=files(1, digit_104), headers=slow)
    # The bucket, a quarter of an item, was left 1.75 in debt: 2 items short, at a quarter a second.
    assert refused.status_code == 429 and refused.get_json()["limit"] == "max_items_per_s"
    assert 7 <= int(refused.headers["Retry-After"]) <= 8


def test_status_and_metrics_show_each_tenants_counts(make_app, fake_redis, tmp_path, digit_104):
    path = tenants_file(tmp_path, {"name": "small", "weight": 2, "max_queued_items": 3, "keys": [digest("k-small")]})
    app, worker = make_app(tenants_file=path)
    client = app.test_client()
    publish_heartbeat(fake_redis)
    small = {"Authorization": "Bearer k-small"}
    assert client.post("/recognize", data=files(2, digit_104), headers=small).status_code == 200
    worker.answer = False
    assert client.post("/jobs", data=files(2, digit_104), headers=small).status_code == 202
    assert client.post("/jobs", data=files(2, digit_104), headers=small).status_code == 429
    tenants = client.get("/status", headers=small).get_json()["tenants"]
    assert set(tenants) == {"default", "small"}
    shown = tenants["small"]
    assert shown["mean_queue_wait_s"] >= 0
    assert {**shown, "mean_queue_wait_s": None} == {
        "weight": 2.0, "max_queued_items": 3, "max_items_per_s": None, "queued_items": 2, "items_admitted": 4,
        "items_refused": {"max_queued_items": 2}, "items_ended": 2, "jobs_started": 1, "mean_queue_wait_s": None}
    text = client.get("/metrics", headers=small).get_data(as_text=True)
    assert 'inferq_tenant_queued_items{tenant="small"} 2.0' in text
    assert 'inferq_tenant_items_admitted_total{tenant="small"} 4.0' in text
    assert 'inferq_tenant_items_refused_total{limit="max_queued_items",tenant="small"} 2.0' in text
    assert 'inferq_tenant_items_ended_total{tenant="small"} 2.0' in text
    assert 'inferq_tenant_queue_wait_seconds_count{tenant="small"} 1.0' in text
