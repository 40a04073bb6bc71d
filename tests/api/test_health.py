import io
import time

import pytest
import redis

from api.app import create_app
from inferq import keys
from inferq.catalog import ModelCatalog
from inferq.jobs import JobStore
from inferq.settings import Settings
from inferq.worker_registry import WorkerRegistry
from tests.support.specs import CIFAR_LABELS, image_classifier_spec, mnist_spec, pair_spec, tabular_spec
from tests.support.stand_in import InlineWorker, StandInStore, publish_heartbeat
from tests.support.waiting import wait_for


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
    assert response.get_json() == {"status": "ready", "workers": 1, "models": {"mnist": [4]}}


def test_not_ready_while_a_catalogued_model_has_no_live_worker(client, fake_redis):
    ModelCatalog(fake_redis).publish([tabular_spec(1)])  # its workers are gone; the catalog keeps it
    publish_heartbeat(fake_redis, version=4)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"error": "not ready: no live worker serves iris", "reason": "no_worker",
                                   "models_without_workers": ["iris"]}
    optional = client.get("/readyz?workers=optional")
    assert optional.status_code == 200
    assert optional.get_json() == {"status": "ready", "workers": 1, "models": {"mnist": [4]}}
    publish_heartbeat(fake_redis, name="b:2", specs=[tabular_spec(1)])
    assert client.get("/readyz").get_json() == {"status": "ready", "workers": 2, "models": {"iris": [1], "mnist": [4]}}


def test_not_ready_when_the_broker_is_down(make_app, unreachable_redis):
    app, _ = make_app(redis_client=unreachable_redis)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["reason"] == "broker"


def test_a_worker_that_stopped_beating_is_gone(client, fake_redis):
    publish_heartbeat(fake_redis, version=4)
    fake_redis.zadd("inferq:workers", {"host:1": time.time() - 60})
    assert client.get("/readyz").status_code == 503


MNIST_TENSORS = {
    "signature": "serving_default",
    "inputs": [{"name": "inputdata", "dtype": "float32", "shape": [-1, 784], "tensor_name": "inputdata:0"}],
    "outputs": [{"name": "labels", "dtype": "int64", "shape": [-1], "tensor_name": "inference:0"},
                {"name": "probabilities", "dtype": "float32", "shape": [-1, 10], "tensor_name": "probabilities:0"}],
}


def test_models_shows_what_live_workers_serve(client, fake_redis):
    publish_heartbeat(fake_redis, name="a:1", version=4, batch_sizes=[3, 5])
    publish_heartbeat(fake_redis, name="b:2", version=5)
    assert client.get("/models").get_json() == {"models": [{
        "name": "mnist", "versions": [4, 5], "ready_versions": [4, 5], **MNIST_TENSORS,
        "batching": {"max_batch_size": 64, "max_batch_wait_ms": 5.0}, "labels": None,
        "version_policy": {"latest": 1},
    }]}


def test_models_lists_every_model_with_its_versions_tensors_and_batching(client, fake_redis):
    publish_heartbeat(fake_redis, specs=[mnist_spec(4), image_classifier_spec(1), image_classifier_spec(2),
                                         tabular_spec(7)])
    ModelCatalog(fake_redis).publish([pair_spec(1)])  # catalogued, no live worker
    models = client.get("/models").get_json()["models"]
    assert [(model["name"], model["versions"], model["ready_versions"]) for model in models] == [
        ("cifar", [1, 2], [1, 2]), ("iris", [7], [7]), ("mnist", [4], [4]), ("pair", [1], [])]
    cifar = models[0]
    assert cifar["inputs"] == [{"name": "image", "dtype": "float32", "shape": [-1, 32, 32, 3],
                                "tensor_name": "image:0"}]
    assert cifar["outputs"] == [{"name": "scores", "dtype": "float32", "shape": [-1, 10], "tensor_name": "scores:0"}]
    assert cifar["batching"] == {"max_batch_size": 16, "max_batch_wait_ms": 2.0}  # its config's, not the server's
    assert cifar["labels"] == list(CIFAR_LABELS)
    assert cifar["version_policy"] == {"latest": 2}
    assert models[2]["batching"] == {"max_batch_size": 64, "max_batch_wait_ms": 5.0}  # MAX_BATCH_SIZE, _WAIT_MS
    assert [tensor["name"] for tensor in models[3]["inputs"]] == ["ids", "weights"]


def test_one_model_and_one_version_of_it(client, fake_redis):
    publish_heartbeat(fake_redis, specs=[image_classifier_spec(1), image_classifier_spec(2)])
    publish_heartbeat(fake_redis, name="b:2", version=4)
    everything = {model["name"]: model for model in client.get("/models").get_json()["models"]}
    assert client.get("/models/cifar").get_json() == everything["cifar"]
    assert client.get("/models/mnist").get_json() == everything["mnist"]
    one = client.get("/models/cifar/versions/1").get_json()
    assert (one["name"], one["versions"], one["ready_versions"]) == ("cifar", [1], [1])


@pytest.mark.parametrize(("path", "message"), [
    ("/models/fashion", "no model 'fashion'; served: 'cifar', 'mnist'"),
    ("/models/cifar/versions/3", "model 'cifar' version 3 is not served; served: 1"),
])
def test_an_unknown_model_or_version_is_404(client, fake_redis, path, message):
    publish_heartbeat(fake_redis, specs=[image_classifier_spec(1), mnist_spec(4)])
    response = client.get(path)
    assert (response.status_code, response.get_json()) == (404, {"error": message})


def test_the_default_model_before_any_worker_described_it_is_503(client):
    response = client.get("/models/mnist")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "no worker has loaded model 'mnist' yet; try again shortly",
                                   "reason": "no_worker"}
    assert client.get("/models").get_json() == {"models": []}


def test_status_sums_up_the_system(client, fake_redis):
    publish_heartbeat(fake_redis, name="a:1", version=4, batch_sizes=[3, 64])
    body = client.get("/status").get_json()
    assert body == {"ready": True, "workers": 1, "default_model": "mnist", "model_versions": [4],
                    "models": {"mnist": {"versions": [4], "queued_images": {"interactive": 0, "bulk": 0}}},
                    "queued_images": 0,
                    "lanes": {"interactive": {"queued_images": 0, "limit": 10_000},
                              "bulk": {"queued_images": 0, "limit": 100_000}},
                    "recent_batch_sizes": {"a:1": [3, 64]}, "dead_letters": 0, "load_failures": [],
                    # One tenant, as without TENANTS_FILE: every caller's (inferq.tenants).
                    "tenants": {"default": {"weight": 1.0, "max_queued_items": None, "max_items_per_s": None,
                                            "queued_items": 0, "items_admitted": 0, "items_refused": {},
                                            "items_ended": 0, "jobs_started": 0, "mean_queue_wait_s": None}}}


def test_status_counts_the_messages_set_aside_as_unreadable(client, fake_redis):
    fake_redis.lpush(keys.DEAD_LETTERS, b"not a message", b'{"properties": 1}')
    assert client.get("/status").get_json()["dead_letters"] == 2


def test_status_counts_each_models_queue(make_app, fake_redis, digit_104):
    publish_heartbeat(fake_redis, specs=[mnist_spec(4), tabular_spec(1)])
    ModelCatalog(fake_redis).publish([image_classifier_spec(1)])  # no live worker
    app, worker = make_app()
    worker.answer = False  # nothing drains
    client = app.test_client()
    assert client.post("/jobs", data={"image": [(io.BytesIO(digit_104), "a.png")]}).status_code == 202
    assert client.post("/v1/models/iris:predict", json={"instances": [[0.0] * 4] * 3}).status_code == 504
    body = client.get("/status").get_json()
    assert body["ready"] is False  # cifar has no live worker
    assert body["models"] == {
        "cifar": {"versions": [], "queued_images": {"interactive": 0, "bulk": 0}},
        "iris": {"versions": [1], "queued_images": {"interactive": 3, "bulk": 0}},
        "mnist": {"versions": [4], "queued_images": {"interactive": 0, "bulk": 1}},
    }
    assert body["lanes"]["interactive"]["queued_images"] == 3 and body["lanes"]["bulk"]["queued_images"] == 1
    assert body["queued_images"] == 4


def test_one_scrape_shows_the_api_the_queue_and_the_workers(client, fake_redis):
    publish_heartbeat(fake_redis, version=4, name="a:1", batch_sizes=[64, 64])
    publish_heartbeat(fake_redis, version=4, name="b:2", batch_sizes=[32])
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'inferq_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'inferq_queue_images{model="mnist",priority="interactive"} 0.0' in text
    assert 'inferq_queue_images{model="mnist",priority="bulk"} 0.0' in text
    assert "inferq_workers 2.0" in text
    assert 'inferq_worker_batch_images_count{model="mnist",version="4"} 3.0' in text
    assert 'inferq_worker_batch_images_sum{model="mnist",version="4"} 160.0' in text
    assert 'inferq_worker_batch_images_bucket{le="32.0",model="mnist",version="4"} 1.0' in text


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
    assert response.get_json() == {"status": "ready", "workers": 0, "models": {}}
    publish_heartbeat(fake_redis, version=4)
    assert client.get("/readyz?workers=optional").get_json()["workers"] == 1


def test_workers_optional_still_needs_redis_and_a_known_value(make_app, unreachable_redis, client):
    app, _ = make_app(redis_client=unreachable_redis)
    down = app.test_client().get("/readyz?workers=optional")
    assert down.status_code == 503 and down.get_json()["reason"] == "broker"
    bad = client.get("/readyz?workers=maybe")
    assert bad.status_code == 400 and "workers must be" in bad.get_json()["error"]


@pytest.fixture
def real_redis(redis_url):
    return redis.Redis.from_url(redis_url)


def app_on(client, models_ttl_s: float | None = None, **overrides):
    """An app as ``make up`` runs it (its cache of what is served included), on ``client``'s Redis."""
    settings = Settings(**{"sync_timeout_s": 0.3, **overrides})
    worker = InlineWorker(JobStore(client, result_ttl_s=settings.result_ttl_s, depth_limits=settings.depth_limits),
                          client)
    return create_app(settings, redis_client=client, store=StandInStore(client, worker, settings),
                      models_ttl_s=models_ttl_s).test_client()


def test_once_ready_the_served_model_is_never_refused_as_unserved(real_redis, digit_104):
    # A fresh stack: the API asked what is served before the worker's first heartbeat, /readyz
    # then answered 200, and the next request got 503 no_worker from the cache for its ttl.
    api = app_on(real_redis, models_ttl_s=3600)
    assert api.get("/readyz").status_code == 503
    assert api.post("/recognize", data={"image": (io.BytesIO(digit_104), "a.png")}).status_code == 503
    publish_heartbeat(real_redis, version=4)
    assert api.get("/readyz").status_code == 200
    response = api.post("/jobs?priority=bulk", data={"image": [(io.BytesIO(digit_104), "a.png")]})
    assert response.status_code == 202, response.get_json()
    assert api.post("/recognize", data={"image": (io.BytesIO(digit_104), "a.png")}).status_code == 200


def test_a_model_removed_while_its_workers_were_down_is_forgotten_and_the_service_ready_again(real_redis):
    # Served two models, then restarted without iris on the same Redis data.
    publish_heartbeat(real_redis, specs=[mnist_spec(4), tabular_spec(1)])
    WorkerRegistry(real_redis, heartbeat_interval_s=Settings().heartbeat_interval_s).remove("host:1")
    publish_heartbeat(real_redis, name="host:2", version=4)
    api = app_on(real_redis, model_forget_after_s=0.5)
    assert api.get("/readyz").get_json()["models_without_workers"] == ["iris"]  # announced just now
    wait_for(lambda: api.get("/readyz").status_code == 200, 10, "iris to be forgotten")
    assert api.get("/readyz").get_json() == {"status": "ready", "workers": 1, "models": {"mnist": [4]}}
    assert [model["name"] for model in api.get("/models").get_json()["models"]] == ["mnist"]
    assert api.post("/v1/models/iris:predict", json={"instances": [[0.0] * 4]}).status_code == 404
    assert ModelCatalog(real_redis).models() == {"mnist": [mnist_spec(4)]}  # and from Redis too


def test_within_the_window_work_is_admitted_for_a_model_whose_workers_are_scaled_to_zero(real_redis):
    publish_heartbeat(real_redis, specs=[mnist_spec(4), tabular_spec(1)])
    WorkerRegistry(real_redis, heartbeat_interval_s=Settings().heartbeat_interval_s).remove("host:1")
    publish_heartbeat(real_redis, name="host:2", version=4)
    api = app_on(real_redis)  # MODEL_FORGET_AFTER_S's default
    assert api.get("/readyz").status_code == 503
    assert api.post("/v1/models/iris:predict", json={"instances": [[0.0] * 4]}).status_code == 200


def test_with_no_worker_alive_no_model_is_forgotten(real_redis):
    ModelCatalog(real_redis).publish([tabular_spec(1)])
    real_redis.hset(keys.MODELS_ANNOUNCED, "iris", time.time() - 7200)  # scaled to zero two hours ago
    api = app_on(real_redis, models_ttl_s=0, model_forget_after_s=3600)
    assert api.post("/v1/models/iris:predict", json={"instances": [[0.0] * 4]}).status_code == 200
    publish_heartbeat(real_redis, version=4)  # a worker of another model: now iris is forgotten
    assert api.post("/v1/models/iris:predict", json={"instances": [[0.0] * 4]}).status_code == 404
