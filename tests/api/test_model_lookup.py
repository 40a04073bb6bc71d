"""What the API takes work for: the catalog merged with live heartbeats, read through a cache."""

from __future__ import annotations

import time

import fakeredis
import pytest

from api.errors import ApiError
from api.queue.model_lookup import ServedModels
from inferq import messages
from inferq.catalog import ModelCatalog
from inferq.settings import Settings
from inferq.worker_registry import WorkerRegistry
from tests.support.specs import image_classifier_spec, mnist_spec
from tests.support.stand_in import publish_heartbeat


def served(client: fakeredis.FakeRedis, ttl_s: float = 0) -> ServedModels:
    workers = WorkerRegistry(client, heartbeat_interval_s=Settings().heartbeat_interval_s)
    return ServedModels(ModelCatalog(client), workers, ttl_s=ttl_s)


def test_live_workers_versions_come_first_and_the_catalog_stands_in_for_models_without_one():
    client = fakeredis.FakeRedis()
    publish_heartbeat(client, name="a:1", version=4)
    publish_heartbeat(client, name="b:2", version=5)  # the catalog now says 5 alone; a:1 still serves 4
    ModelCatalog(client).publish([image_classifier_spec(1), image_classifier_spec(2)])
    models = served(client).all()
    assert {name: [spec.version for spec in specs] for name, specs in models.items()} == {"cifar": [1, 2],
                                                                                          "mnist": [4, 5]}
    found = served(client).find("mnist")
    assert (found.version, found.versions, found.addressed) == (5, [4, 5], False)
    pinned = served(client).find("mnist", 4)
    assert (pinned.version, pinned.addressed) == (4, True)


def test_unknown_names_and_versions_are_404_and_the_default_model_before_any_worker_503():
    client = fakeredis.FakeRedis()
    with pytest.raises(ApiError) as caught:
        served(client).find("mnist", expected=True)
    assert caught.value.status == 503 and caught.value.details == {"reason": "no_worker"}
    with pytest.raises(ApiError) as caught:
        served(client).find("mnist")
    assert (caught.value.status, caught.value.message) == (404, "no model 'mnist'; served: none yet")
    publish_heartbeat(client, version=3)
    with pytest.raises(ApiError) as caught:
        served(client).find("mnist", 2)
    assert (caught.value.status, caught.value.message) == (404, "model 'mnist' version 2 is not served; served: 3")


def test_what_is_served_is_read_again_once_the_cache_is_older_than_its_ttl():
    client = fakeredis.FakeRedis()
    models = served(client, ttl_s=0.2)
    assert models.all() == {}
    ModelCatalog(client).publish([mnist_spec(3)])
    assert models.all() == {}  # cached
    time.sleep(0.25)
    assert [spec.version for spec in models.all()["mnist"]] == [3]


def test_large_tensors_travel_beside_messages_only_while_every_live_worker_reads_them():
    client = fakeredis.FakeRedis()
    assert served(client).workers_read(messages.STORED_INPUTS)  # none alive: the next ones are of this release
    publish_heartbeat(client, name="new:1", version=3)
    assert served(client).workers_read(messages.STORED_INPUTS)
    publish_heartbeat(client, name="old:2", version=3, features=())  # a worker of an earlier release
    assert not served(client).workers_read(messages.STORED_INPUTS)
    WorkerRegistry(client, heartbeat_interval_s=Settings().heartbeat_interval_s).remove("old:2")
    assert served(client).workers_read(messages.STORED_INPUTS)


def test_a_model_or_version_the_cache_lacks_is_read_again_before_it_is_refused():
    # The window of a fresh stack: a request (or /readyz) read what is served before the worker's
    # first heartbeat, and the cache then refused the served model for its whole ttl.
    client = fakeredis.FakeRedis()
    models = served(client, ttl_s=3600)
    with pytest.raises(ApiError) as caught:
        models.find("mnist", expected=True)
    assert caught.value.status == 503
    publish_heartbeat(client, version=3)
    assert models.find("mnist", expected=True).version == 3
    publish_heartbeat(client, name="b:2", version=4)
    assert models.find("mnist", 4).version == 4
    publish_heartbeat(client, name="c:3", version=5)
    assert models.find("mnist").version == 4  # what the cache has, it answers from
