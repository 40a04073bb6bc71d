import pytest
from redis.sentinel import SentinelConnectionPool

from inferq.redis_connection import SentinelAddress, connect, names_sentinels
from inferq.settings import Settings


def test_sentinel_urls_are_told_from_redis_urls():
    assert names_sentinels("sentinel://a:26379;sentinel://b:26379")
    assert names_sentinels("sentinel://a")
    assert not names_sentinels("redis://sentinel:6379/0")
    assert not names_sentinels("rediss://a:6380/0")


def test_a_sentinel_url_names_every_sentinel_and_the_masters_database_and_password():
    address = SentinelAddress.parse("sentinel://:s%40cret@a:26380/2;sentinel://b;sentinel://c:1")
    assert address == SentinelAddress([("a", 26380), ("b", 26379), ("c", 1)], db=2, password="s@cret")
    with pytest.raises(ValueError, match="not a Sentinel"):
        SentinelAddress.parse("sentinel://a;redis://b:6379")


def test_a_sentinel_client_asks_for_the_named_master():
    client = connect("sentinel://127.0.0.1:1/3;sentinel://127.0.0.1:2", sentinel_master="queue")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "queue" and pool.is_master
    assert pool.connection_kwargs["db"] == 3
    assert [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels] == [1, 2]
    with pytest.raises(ValueError, match="REDIS_SENTINEL_MASTER"):
        connect("sentinel://127.0.0.1:1", sentinel_master="")


def test_admissions_wait_for_a_replica_by_default_only_behind_sentinels():
    assert Settings(redis_url="sentinel://a:26379").replicas_to_await == 1
    assert Settings(redis_url="redis://a:6379/0").replicas_to_await == 0
    assert Settings(redis_url="redis://a:6379/0", redis_min_replicas_acked=2).replicas_to_await == 2
    assert Settings(redis_url="sentinel://a:26379", redis_min_replicas_acked=0).replicas_to_await == 0
