"""Callbacks: URLs checked, signatures as Standard Webhooks makes them, claims with leases."""

import base64
import hashlib
import hmac

import pytest

from inferq import callbacks, keys
from inferq.callbacks import CallbackUrlError, Deliveries, check_url
from inferq.jobs import Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE

ALLOWED = ("https://hooks.example.com/inferq/", "http://127.0.0.1:9000")


@pytest.mark.parametrize("url", ["https://hooks.example.com/inferq/done", "https://hooks.example.com/inferq/?a=1",
                                 "http://127.0.0.1:9000", "http://127.0.0.1:9000/x"])
def test_urls_under_an_allowed_prefix_are_taken(url):
    assert check_url(url, ALLOWED) == url


@pytest.mark.parametrize("url", ["https://hooks.example.com/other", "https://hooks.example.com.evil.net/inferq/",
                                 "http://127.0.0.1:90001/", "http://127.0.0.1:9000.evil.net/",
                                 "http://127.0.0.1:9000@evil.net/", "https://hooks.example.com/inferq",
                                 "http://169.254.169.254/latest/meta-data/"])
def test_urls_outside_the_allow_list_are_refused(url):
    with pytest.raises(CallbackUrlError) as refused:
        check_url(url, ALLOWED)
    assert refused.value.status in (400, 422)


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/inferq/x", "not a url", "https:///path",
                                 "https://user:pw@hooks.example.com/inferq/", "http://[::1", "x" * 3000])
def test_what_is_not_an_http_url_is_a_400(url):
    with pytest.raises(CallbackUrlError) as refused:
        check_url(url, ALLOWED)
    assert refused.value.status == 400


def test_no_allow_list_refuses_every_callback():
    with pytest.raises(CallbackUrlError) as refused:
        check_url("https://hooks.example.com/inferq/x", ())
    assert refused.value.status == 422


def test_the_signature_is_standard_webhooks_v1():
    # The Standard Webhooks specification's own example: its secret, id, timestamp and payload.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    key = callbacks.signing_key(secret)
    signed = callbacks.signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signed == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signed == "v1," + base64.b64encode(hmac.new(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body,
                                                      hashlib.sha256).digest()).decode()
    headers = callbacks.signed_headers(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert callbacks.verify(key, headers, body, now=1614265330 + 10)
    assert not callbacks.verify(key, headers, body + b" ", now=1614265330)
    assert not callbacks.verify(key, headers, body, now=1614265330 + 301)  # a replay, too late
    assert not callbacks.verify(callbacks.signing_key(callbacks.new_secret()), headers, body, now=1614265330)


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="])
def test_a_secret_not_in_the_standard_form_is_refused(secret):
    with pytest.raises(ValueError):
        callbacks.signing_key(secret)


def test_backoff_doubles():
    assert [callbacks.backoff_s(n, 0.5) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


@pytest.fixture
def store(fake_redis):
    return JobStore(fake_redis, result_ttl_s=600, depth_limits={INTERACTIVE: 10, BULK: 20})


def test_an_ended_job_with_a_callback_is_due_once_and_claimed_by_one_deliverer(store, fake_redis):
    store.admit([("a", ["x"]), ("b", ["x"])], model="m", priority=BULK, callbacks={"a": "http://h/cb"})
    assert store.get("a").callback.to_dict() == {"url": "http://h/cb", "status": "pending", "attempts": 0,
                                                 "last_error": None}
    assert store.get("b").callback is None
    assert fake_redis.zcard(keys.CALLBACKS_DUE) == 0  # not before it ends
    outcome = Outcome.failed("broken")
    store.finish([Finished("a", 1, "m", BULK, None, outcome), Finished("b", 1, "m", BULK, None, outcome)])
    store.finish([Finished("a", 1, "m", BULK, None, outcome)])  # delivered twice: queued once
    assert fake_redis.zrange(keys.CALLBACKS_DUE, 0, -1) == [b"a"]

    deliveries = Deliveries(fake_redis)
    due = fake_redis.zscore(keys.CALLBACKS_DUE, "a")
    [(job_id, token)] = deliveries.claim(due + 1, lease_s=30)
    assert job_id == "a"
    assert deliveries.claim(due + 2, lease_s=30) == []  # leased: nobody else takes it
    # The lease ended (its deliverer died): another takes it, and the first may no longer record.
    [(_, second)] = deliveries.claim(due + 40, lease_s=30)
    assert not deliveries.record("a", token, callbacks.DELIVERED)
    assert deliveries.record("a", second, callbacks.PENDING, error="HTTP 500", retry_at=due + 50)
    assert store.get("a").callback.to_dict() == {"url": "http://h/cb", "status": "pending", "attempts": 1,
                                                 "last_error": "HTTP 500"}
    assert deliveries.claim(due + 45, lease_s=30) == []
    [(_, third)] = deliveries.claim(due + 50, lease_s=30)
    assert deliveries.record("a", third, callbacks.DELIVERED)
    assert store.get("a").callback.status == "delivered" and store.get("a").callback.attempts == 2
    assert fake_redis.zcard(keys.CALLBACKS_DUE) == 0


def test_a_due_callback_whose_job_expired_is_dropped(store, fake_redis):
    fake_redis.zadd(keys.CALLBACKS_DUE, {"gone": 1.0})
    assert Deliveries(fake_redis).claim(2.0, lease_s=30) == []
    assert fake_redis.zcard(keys.CALLBACKS_DUE) == 0
