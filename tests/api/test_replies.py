"""The reply listener wakes every sync request of its process: no reply, however broken, may end it."""

from __future__ import annotations

import orjson
import pytest
import redis

from api.queue.replies import ReplyListener
from inferq import keys
from inferq.jobs import JobStore, Outcome

ANSWER = {"model_version": 1, "outputs": {"labels": [7]}}


@pytest.fixture
def listener(redis_url):
    client = redis.Redis.from_url(redis_url)
    skipped: list[int] = []
    listener = ReplyListener(JobStore(client, result_ttl_s=60, depth_limits={"interactive": 10, "bulk": 10}),
                             on_skipped=lambda: skipped.append(1))
    listener.skipped = skipped
    listener.push = lambda item: client.rpush(keys.replies(listener.name), item)
    yield listener
    listener.close()


def reply(*job_ids: str) -> bytes:
    return orjson.dumps([[job_id, Outcome.done(ANSWER).to_dict()] for job_id in job_ids])


@pytest.mark.parametrize("garbage", [
    b"not json", b'{"an": "object"}', b"[1, 2]", b'[["a-job"]]', b'[["a-job", {"no outcome": 0}]]', b"\xff\xfe",
])
def test_a_reply_it_cannot_read_is_skipped_and_the_next_is_delivered(listener, garbage):
    waiter = listener.expect("good")  # the listener starts with its first waiter
    listener.push(garbage)
    listener.push(reply("good"))
    outcome = waiter.wait(10)
    assert outcome is not None and outcome.answer == ANSWER
    assert listener.skipped == [1]


def test_a_waiter_that_fails_to_take_its_outcome_holds_up_no_other(listener):
    broken = listener.expect("broken")

    def fails(outcome: Outcome) -> None:
        raise RuntimeError("a bug in a callback")

    broken.deliver = fails
    waiter = listener.expect("good")
    listener.push(reply("broken", "good"))
    assert waiter.wait(10) is not None
    later = listener.expect("later")
    listener.push(reply("later"))
    assert later.wait(10) is not None
    assert listener.skipped == [1]
