"""``Client``: recognize, submit and jobs, and the routes a named model takes."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from PIL import Image

from inferq import jobs
from inferq.client import Client, JobExpired, JobFailed, JobLost, NotDone
from inferq.client import job as client_job
from tests.client.conftest import QUICK_RETRIES
from tests.client.fake_service import numbered_images
from tests.conftest import png_bytes


def test_recognize_answers_every_image_in_order_over_as_many_requests_as_the_limit_needs(service):
    client = Client(service.url, max_images_per_request=1000, retry=QUICK_RETRIES)
    answers = client.recognize(numbered_images(2500))
    assert [answer.label for answer in answers] == [i % 10 for i in range(2500)]
    assert [answer.filename for answer in answers[998:1001]] == ["array#998", "array#999", "array#1000"]
    assert [len(ids) for _, ids in service.posts] == [1000, 1000, 500]
    assert answers[7].to_dict() == {"filename": "array#7", "labels": [7],
                                    "probabilities": [0.0] * 7 + [1.0, 0.0, 0.0], "model_version": 7}


def test_recognize_takes_files_bytes_and_pil_images(service, client, tmp_path):
    digits = numbered_images(3)
    (tmp_path / "zero.png").write_bytes(png_bytes(digits[0]))
    answers = client.recognize([tmp_path / "zero.png", png_bytes(digits[1]), Image.fromarray(digits[2])])
    assert [answer.filename for answer in answers] == ["zero.png", "image-1", "image-2.png"]
    assert [answer.label for answer in answers] == [0, 1, 2]


def test_a_model_name_targets_its_routes(service, client):
    client.recognize(numbered_images(1), model="cnn")
    client.submit(numbered_images(1), model="cnn").wait(10)
    client.recognize(numbered_images(1))
    assert [path for path, _ in service.posts] == ["/models/cnn/recognize", "/models/cnn/jobs", "/recognize"]


def test_a_job_may_ask_for_a_callback(service, client):
    client.submit(numbered_images(1), callback="https://hooks.example.com/a b").wait(10)
    client.submit(numbered_images(1), model="cnn").wait(10)
    assert service.post_queries == [{"callback": ["https://hooks.example.com/a b"]}, {}]
    assert [path for path, _ in service.posts] == ["/jobs", "/models/cnn/jobs"]


def test_a_job_is_collected_when_done_and_says_so_before(service, client):
    service.polls_before_done = lambda ids: 2
    job = client.submit(numbered_images(4))
    with pytest.raises(NotDone, match=f"job {job.job_id} is queued, not done"):
        job.result()
    assert [answer.label for answer in job.wait(10)] == [0, 1, 2, 3]
    assert [answer.label for answer in client.job(job.job_id).result()] == [0, 1, 2, 3]


def test_polls_ask_the_service_to_hold_them_and_go_on_at_intervals_where_it_does_not(service, client):
    service.polls_before_done = lambda ids: 3
    job = client.submit(numbered_images(2))
    assert [answer.label for answer in job.wait(10)] == [0, 1]
    # A service of before long polls answers at once: the client polled on, each poll asking again.
    assert service.queries == [f"wait={client_job.POLL_WAIT_S:.3f}"] * 4
    # A wait of its own is never asked past its end.
    service.answering.clear()
    job, asked = client.submit(numbered_images(1)), len(service.queries)
    with pytest.raises(NotDone):
        job.wait(0.3)
    waits = [float(query.removeprefix("wait=")) for query in service.queries[asked:] if query]
    assert waits and all(0 < wait <= 0.3 for wait in waits), service.queries[asked:]


def test_a_failed_job_and_an_unknown_one_are_errors_that_say_so(service, client):
    service.failure = lambda ids: "the model failed"
    with pytest.raises(JobFailed, match="job job-0 failed: the model failed"):
        client.submit(numbered_images(1)).wait(10)
    with pytest.raises(JobLost, match="job nope is unknown to the service"):
        client.job("nope").status()


def test_an_expired_job_ends_the_wait_at_once_with_an_error_that_says_so(service, client):
    service.failure = lambda ids: "its deadline passed before it ran"
    service.failed_status = "expired"
    job = client.submit(numbered_images(1))
    with pytest.raises(JobExpired, match=f"job {job.job_id} expired before it ran: its deadline passed"):
        job.wait(5)
    # Answered on the first poll: the wait stopped there, not at its timeout.
    assert service.requests == 2


def test_the_client_ends_its_wait_on_the_statuses_the_service_ends_jobs_in():
    # The client imports nothing of the server's, so it keeps its own copy of the statuses.
    assert client_job.FINAL == jobs.FINAL
    assert (client_job.QUEUED, client_job.RUNNING) == (jobs.QUEUED, jobs.RUNNING)


def test_more_images_than_a_request_carries_are_no_job(client):
    with pytest.raises(ValueError, match="1025 images in one job, more than the 1024 .* use score()"):
        client.submit(np.zeros((1025, 784), np.uint8))


def test_a_sync_request_that_timed_out_is_collected_as_the_job_it_became(service, client):
    job = client.submit(numbered_images(2))
    service.script.append((504, {}, orjson.dumps({"error": "no answer within 30 s", "job_id": job.job_id})))
    answers = client.recognize(numbered_images(2))
    assert [(answer.filename, answer.label) for answer in answers] == [("array#0", 0), ("array#1", 1)]
