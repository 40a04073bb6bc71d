import time

import pytest

from tests.support.stand_in import publish_heartbeat


@pytest.fixture
def client(make_app):
    """An app whose stand-in worker has sent no heartbeat: each test publishes what it needs."""
    return make_app()[0].test_client()


def test_healthz_answers_whatever_the_rest(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}


def test_not_ready_without_a_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "no_worker"


def test_not_ready_while_a_worker_waits_for_its_model(client, fake_redis):
    publish_heartbeat(fake_redis, version=None)
    assert client.get("/readyz").status_code == 503


def test_ready_once_a_worker_has_a_model(client, fake_redis):
    publish_heartbeat(fake_redis, version=4)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "workers": 1, "model_versions": [4]}


def test_not_ready_when_the_broker_is_down(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "broker"


def test_a_worker_that_stopped_beating_is_gone(client, fake_redis):
    publish_heartbeat(fake_redis, version=4)
    fake_redis.zadd("inferq:workers", {"host:1": time.time() - 60})
    assert client.get("/readyz").status_code == 503


def test_models_shows_what_live_workers_serve(client, fake_redis):
    publish_heartbeat(fake_redis, name="a:1", version=4, batch_sizes=[3, 5])
    publish_heartbeat(fake_redis, name="b:2", version=5)
    body = client.get("/models").get_json()
    assert body["name"] == "mnist"
    assert body["versions"] == [4, 5]
    assert body["served_version"] == 5
    assert {w["name"]: (w["batches"], w["images"]) for w in body["workers"]} == {"a:1": (2, 8), "b:2": (0, 0)}


def test_status_sums_up_the_system(client, fake_redis):
    publish_heartbeat(fake_redis, name="a:1", version=4, batch_sizes=[3, 64])
    body = client.get("/status").get_json()
    assert body == {"ready": True, "workers": 1, "model_versions": [4], "queued_images": 0,
                    "lanes": {"interactive": {"queued_images": 0, "limit": 10_000},
                              "bulk": {"queued_images": 0, "limit": 100_000}},
                    "recent_batch_sizes": {"a:1": [3, 64]}}


def test_one_scrape_shows_the_api_the_queue_and_the_workers(client, fake_redis):
    publish_heartbeat(fake_redis, version=4, name="a:1", batch_sizes=[64, 64])
    publish_heartbeat(fake_redis, version=4, name="b:2", batch_sizes=[32])
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'inferq_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'inferq_queue_images{model="mnist",priority="interactive"} 0.0' in text
    assert 'inferq_queue_images{model="mnist",priority="bulk"} 0.0' in text
    assert "inferq_workers 2.0" in text
    assert "inferq_worker_batch_images_count 3.0" in text
    assert "inferq_worker_batch_images_sum 160.0" in text
    assert 'inferq_worker_batch_images_bucket{le="32.0"} 1.0' in text


@pytest.mark.parametrize("path", ["/recognize", "/jobs", "/models", "/metrics"])
def test_an_api_key_guards_every_route_but_the_probes(make_app, path):
    app, _ = make_app(api_key="s3cret")
    client = app.test_client()
    method = client.post if path in ("/recognize", "/jobs") else client.get
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        response = method(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API key" in response.get_json()["error"]
    assert method(path, headers={"Authorization": "Bearer s3cret"}).status_code != 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_with_workers_optional_an_api_is_ready_once_redis_answers(client, fake_redis):
    """For workers started on demand: the API must take work before any worker runs."""
    assert client.get("/readyz").status_code == 503
    response = client.get("/readyz?workers=optional")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "workers": 0, "model_versions": []}
    publish_heartbeat(fake_redis, version=4)
    assert client.get("/readyz?workers=optional").get_json()["workers"] == 1


def test_workers_optional_still_needs_redis_and_a_known_value(make_app, unreachable_redis, client):
    app, _ = make_app(redis_client=unreachable_redis)
    down = app.test_client().get("/readyz?workers=optional")
    assert down.status_code == 503 and down.get_json()["reason"] == "broker"
    bad = client.get("/readyz?workers=maybe")
    assert bad.status_code == 400 and "workers must be" in bad.get_json()["error"]
