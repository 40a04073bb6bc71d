"""Retried chunks that never make a second job, and cancelling: ``Job.cancel`` and Ctrl-C in ``inferq score``."""

from __future__ import annotations

import _thread
import json

import numpy as np
import orjson
import pytest

from inferq.client import Client, RetryPolicy, score_file, uploads
from inferq.client.cli import INTERRUPTED, main
from inferq.client.errors import HttpError, JobCancelled, JobLost, Unreachable
from inferq.client.state import state_path
from tests.client.conftest import QUICK_RETRIES
from tests.client.fake_service import DROP_ANSWER, numbered_images

IMAGES = numbered_images(2000)


def test_a_chunk_whose_answer_was_lost_is_sent_again_and_answered_the_job_it_made(service, tmp_path):
    # The service takes the first chunk, and the connection drops before the client hears of it.
    service.script.append(DROP_ANSWER)
    summary = score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, tmp_path / "out.npy", chunk=500,
                         concurrency=1)
    assert summary.scored == 2000
    assert len(service.jobs) == 4  # one job a chunk: the retry was answered the first send's
    assert sorted(service.posted_ids()) == list(range(2000))
    assert len(service.keys_sent) == 5 and len(set(service.keys_sent)) == 4
    assert np.array_equal(np.load(tmp_path / "out.npy"), np.arange(2000) % 10)


def test_a_resumed_run_sends_its_chunks_under_the_keys_they_had(service, tmp_path):
    out = tmp_path / "out.npy"
    service.script.append(DROP_ANSWER)  # chunk 0 is taken, its answer lost, and the run stopped there
    service.script.extend([(503, {}, b'{"error": "full"}')] * 1000)
    with pytest.raises(Unreachable):
        score_file(Client(service.url, retry=RetryPolicy(patience_s=0.05, backoff_s=0.01)), IMAGES, out,
                   chunk=500, concurrency=1)
    run_id = json.loads(state_path(out).read_text())["run_id"]
    assert service.keys_sent == [f'"{run_id}-0"']  # the first send; the 503s came before any key was read
    service.script.clear()
    summary = score_file(Client(service.url, retry=QUICK_RETRIES), IMAGES, out, chunk=500, concurrency=1,
                         resume=True)
    assert summary.scored == 2000
    assert service.keys_sent[1:] == [f'"{run_id}-{index}"' for index in range(4)]
    assert len(service.jobs) == 4  # chunk 0 sent again under its key: answered the job it made
    assert np.array_equal(np.load(out), np.arange(2000) % 10)


def test_job_cancel_cancels_and_says_when_the_job_had_ended(service, client):
    service.answering.clear()
    job = client.submit(IMAGES[:3])
    assert job.cancel() is True
    assert job.status()["status"] == "cancelled"
    with pytest.raises(JobCancelled, match="was cancelled"):
        job.wait(5)
    assert job.cancel() is True  # again: it stays cancelled
    service.answering.set()
    done = client.submit(IMAGES[:3])
    done.wait(5)
    assert done.cancel() is False
    with pytest.raises(JobLost):
        client.job("job-999").cancel()


def test_ctrl_c_with_cancel_on_interrupt_cancels_what_the_run_has_out(service, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "in.npy", IMAGES)
    out = tmp_path / "out.npy"
    service.answering.clear()  # jobs stay queued
    watch_until_sent(monkeypatch, service, jobs=2)
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(out), "--url", service.url, "--quiet",
                   "--chunk", "500", "--concurrency", "2", "--cancel-on-interrupt"])
    err = capsys.readouterr().err
    assert status == INTERRUPTED
    assert sorted(service.cancelled) == sorted(service.jobs)
    assert f"cancelled {len(service.jobs)} of {len(service.jobs)} jobs" in err
    state = json.loads(state_path(out).read_text())
    assert state["jobs"] == {}
    # Resumed, the cancelled chunks are sent again under new keys, and the run ends with every image.
    service.answering.set()
    summary = score_file(Client(service.url, retry=QUICK_RETRIES), tmp_path / "in.npy", out, chunk=500,
                         resume=True)
    assert summary.scored == 2000
    assert len(service.jobs) == len(service.cancelled) + 4  # every chunk a new job: none answered a cancelled one
    assert np.array_equal(np.load(out), np.arange(2000) % 10)


def test_ctrl_c_without_a_terminal_leaves_the_jobs_running_and_says_how_to_resume(service, tmp_path, capsys,
                                                                                   monkeypatch):
    np.save(tmp_path / "in.npy", IMAGES)
    service.answering.clear()
    watch_until_sent(monkeypatch, service, jobs=2)
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.npy"), "--url", service.url,
                   "--quiet", "--chunk", "500", "--concurrency", "2"])
    err = capsys.readouterr().err
    assert status == INTERRUPTED
    assert service.cancelled == []
    assert "jobs are left running on the service; --resume collects their answers" in err


def test_ctrl_c_on_a_terminal_asks_before_cancelling(service, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "in.npy", IMAGES)
    service.answering.clear()
    watch_until_sent(monkeypatch, service, jobs=2)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or "y")
    status = main(["score", str(tmp_path / "in.npy"), "--out", str(tmp_path / "out.npy"), "--url", service.url,
                   "--quiet", "--chunk", "500", "--concurrency", "2"])
    assert status == INTERRUPTED
    assert asked and "[y/N]" in asked[0]
    assert sorted(service.cancelled) == sorted(service.jobs)


def watch_until_sent(monkeypatch, service, *, jobs: int) -> None:
    """Ctrl-C, as the run's main thread gets it, once ``jobs`` jobs are made (and the run waits on them)."""
    real = service._handle
    pressed = []

    def handle(*args):
        answer = real(*args)
        if len(service.jobs) >= jobs and not pressed:
            pressed.append(True)
            _thread.interrupt_main()
        return answer

    monkeypatch.setattr(service, "_handle", handle)


def test_a_409_saying_the_keys_first_send_is_in_flight_is_asked_again_and_other_409s_are_errors(service, client):
    in_flight = (409, {"Retry-After": "0"}, orjson.dumps({"error": "still being admitted",
                                                          "reason": "idempotency_key_in_flight"}))
    service.script.append(in_flight)
    job = client.submit_items(uploads.items(IMAGES[:2]), idempotency_key="k-1")
    assert job.wait(5)[0].label == 0
    assert service.requests == 3  # the 409, the POST again, the poll
    service.script.append(in_flight)
    with pytest.raises(HttpError) as refused:  # without a key, a 409 is the answer
        client.submit_items(uploads.items(IMAGES[:2]))
    assert refused.value.status == 409
