"""The model catalog in Redis: each model's served versions, kept after its workers are gone."""

import dataclasses
import time

import orjson

from inferq import keys
from inferq.catalog import ModelCatalog
from inferq.model_config import ImageConfig, ModelConfig, VersionPolicy
from inferq.model_spec import ANY, ModelSpec, TensorSpec
from tests.support.specs import go_server_spec, mnist_spec

TEXT = ModelSpec("sentiment", 4, "serving_default", (TensorSpec("text", "string", (ANY,), "text:0"),),
                 (TensorSpec("score", "float32", (ANY, 2), "score:0"),),
                 ModelConfig(max_batch_size=8, labels=("neg", "pos"),
                             version_policy=VersionPolicy(latest=None, specific=(4,))))


def test_each_models_versions_are_recorded_oldest_first(fake_redis):
    catalog = ModelCatalog(fake_redis)
    catalog.publish([mnist_spec(3), TEXT, mnist_spec(2)])
    assert catalog.models() == {"mnist": [mnist_spec(2), mnist_spec(3)], "sentiment": [TEXT]}
    assert sorted(fake_redis.hkeys(keys.MODELS)) == [b"mnist", b"sentiment"]


def test_the_config_travels_with_the_spec(fake_redis):
    spec = dataclasses.replace(mnist_spec(1), config=ModelConfig(
        max_batch_wait_ms=1.5, image=ImageConfig(preprocessing="mnist"), labels=tuple("0123456789")))
    ModelCatalog(fake_redis).publish([spec])
    assert ModelCatalog(fake_redis).models()["mnist"][0].config == spec.config


def test_a_publish_replaces_the_versions_of_the_models_it_names_and_keeps_the_others(fake_redis):
    catalog = ModelCatalog(fake_redis)
    catalog.publish([mnist_spec(1), mnist_spec(2), TEXT])
    catalog.publish([mnist_spec(3)])  # version 3 alone is served now
    assert catalog.models() == {"mnist": [mnist_spec(3)], "sentiment": [TEXT]}


def test_a_removed_model_is_forgotten(fake_redis):
    catalog = ModelCatalog(fake_redis)
    catalog.publish([go_server_spec(1), TEXT])
    catalog.remove(["mnist", "never-there"])
    assert catalog.models() == {"sentiment": [TEXT]}


def test_publishing_or_removing_nothing_writes_nothing(fake_redis):
    catalog = ModelCatalog(fake_redis)
    catalog.publish([])
    catalog.remove([])
    assert catalog.models() == {} and not fake_redis.exists(keys.MODELS)


def test_the_catalog_outlives_the_clients_that_wrote_it(fake_redis):
    ModelCatalog(fake_redis).publish([go_server_spec(5)])
    assert ModelCatalog(fake_redis).models() == {"mnist": [go_server_spec(5)]}
    assert ModelCatalog(fake_redis).models()["mnist"][0].signature is None


def test_a_model_unannounced_since_the_cutoff_is_forgotten_unless_kept(fake_redis):
    catalog = ModelCatalog(fake_redis)
    catalog.publish([mnist_spec(3), TEXT])
    fake_redis.hset(keys.MODELS_ANNOUNCED, mapping={"mnist": 100.0, "sentiment": 100.0})
    assert sorted(catalog.models(forget_before=50.0)) == ["mnist", "sentiment"]  # announced since
    assert catalog.models(forget_before=200.0, keep={"mnist"}) == {"mnist": [mnist_spec(3)]}
    assert sorted(fake_redis.hkeys(keys.MODELS)) == [b"mnist"]
    assert sorted(fake_redis.hkeys(keys.MODELS_ANNOUNCED)) == [b"mnist"]


def test_a_model_catalogued_by_an_earlier_release_is_given_its_time_from_when_it_is_first_read(fake_redis):
    fake_redis.hset(keys.MODELS, "mnist", orjson.dumps([mnist_spec(3).to_json()]))  # no announcement
    before = time.time()
    assert ModelCatalog(fake_redis).models(forget_before=before) == {"mnist": [mnist_spec(3)]}
    assert float(fake_redis.hget(keys.MODELS_ANNOUNCED, "mnist")) >= before
