"""A stopped run goes on with --resume: every image scored exactly once, the output whole."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from inferq.client import Client, Interrupted, score_file
from inferq.client.state import state_path
from tests.client.conftest import QUICK_RETRIES
from tests.client.fake_service import numbered_images
from tests.support.scored_outputs import assert_same_bytes, assert_same_items
from tests.support.waiting import wait_for

IMAGES = numbered_images(5000)


class StopAfter:
    """An on_chunk hook that presses Ctrl-C once ``count`` chunks are written."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, chunk) -> None:
        self.count -= 1
        if self.count == 0:
            raise KeyboardInterrupt


def recorded_jobs(out) -> int:
    try:
        return len(json.loads(state_path(out).read_text())["jobs"])
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("extension", [".jsonl", ".csv", ".npy"])
def test_an_interrupted_run_resumed_scores_each_image_once_into_the_same_output(service, tmp_path, extension):
    reference = tmp_path / f"reference{extension}"
    score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, reference, chunk=512)
    service.posts.clear()

    out = tmp_path / f"out{extension}"
    with pytest.raises(KeyboardInterrupt):
        score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, out, chunk=512, on_chunk=StopAfter(3))
    state = json.loads(state_path(out).read_text())
    assert state["done_chunks"] == 3
    summary = score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, out, chunk=512, resume=True)
    assert (summary.resumed, summary.scored) == (3 * 512, 5000 - 3 * 512)
    posted = service.posted_ids()
    # Chunks still in flight at the interrupt were collected as the jobs they were, not sent again.
    assert_same_items(sorted(posted), list(range(5000)), "posted image ids (one each: none twice or never)")
    assert_same_bytes(out, reference)  # the fake service answers alike whatever the batch
    assert not state_path(out).exists()


def test_jobs_in_flight_when_a_run_dies_are_collected_not_sent_again(service, tmp_path):
    service.answering.clear()  # jobs are taken and stay queued
    out = tmp_path / "out.npy"
    first = Client(service.url, retry=QUICK_RETRIES)
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            score_file(first, IMAGES, out, chunk=1024, concurrency=3)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        wait_for(lambda: recorded_jobs(out) == 3, 10, "three jobs sent and recorded")
    finally:
        first.stop()  # the process dies with three jobs out
        runner.join(10)
    assert isinstance(outcome[0], Interrupted)
    assert len(service.posts) == 3

    service.answering.set()
    score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, out, chunk=1024, resume=True)
    assert_same_items(sorted(service.posted_ids()), list(range(5000)), "posted image ids")
    assert len(service.posts) == 5
    assert np.array_equal(np.load(out), np.arange(5000) % 10)


def test_resume_refuses_a_state_left_by_another_run(service, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, out, chunk=512, on_chunk=StopAfter(1))
    with pytest.raises(ValueError, match="another --chunk .*512.*run without --resume to start over"):
        score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, out, chunk=256, resume=True)
    with pytest.raises(ValueError, match="another input"):
        score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES[:4000], out, chunk=512, resume=True)


def test_a_finished_run_with_failures_resumed_reports_them_again_and_sends_nothing(service, client, tmp_path):
    service.failure = lambda ids: "the model failed" if 0 in ids else None
    out = tmp_path / "out.jsonl"
    first = score_file(client, IMAGES, out, chunk=1024)
    posts = len(service.posts)
    again = score_file(client, IMAGES, out, chunk=1024, resume=True)
    assert len(service.posts) == posts
    assert again.failures == first.failures and again.scored == 0 and again.failed_images == 1024
