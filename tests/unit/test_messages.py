import json

import pytest

from inferq import messages


def test_a_message_round_trips_through_json():
    jobs = [messages.JobInput("a", bytes(range(256)) * 3 + bytes(16), "api-1"),
            messages.JobInput("b", b"\x07" * 784 * 2, None)]
    body = json.loads(json.dumps(messages.encode(jobs)))
    assert messages.decode(body) == jobs
    assert [job.count for job in jobs] == [1, 2]
    assert messages.image_count(jobs) == 3


@pytest.mark.parametrize("body", [
    None,
    [],
    {"v": 2, "jobs": []},
    {"v": 1},
    {"v": 1, "jobs": [{"id": "a", "reply_to": None}]},
    {"v": 1, "jobs": [{"id": "a", "pixels": "not base64!", "reply_to": None}]},
    {"v": 1, "jobs": [{"id": "a", "pixels": "AAAA", "reply_to": None}]},
    {"v": 1, "jobs": [{"id": "a", "pixels": "", "reply_to": None}]},
])
def test_anything_else_is_refused(body):
    with pytest.raises(messages.MessageError):
        messages.decode(body)
