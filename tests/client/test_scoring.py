"""A data set in chunks: answers in input order whatever order jobs finish in, a bounded number in
flight, and failed chunks reported with their images."""

from __future__ import annotations

import csv
import threading

import numpy as np
import orjson
import pytest

from inferq.client import HttpError, score_file
from inferq.client.pipeline import ordered
from tests.client.fake_service import numbered_images
from tests.support.scored_outputs import assert_same_items


def test_chunks_come_in_input_order_though_the_first_finish_last(service, client):
    # The first chunks need the most polls: they are answered after later ones.
    service.polls_before_done = lambda ids: max(0, 6 - ids[0] // 512)
    chunks = list(client.score(numbered_images(5000), chunk=512, concurrency=3))
    assert [chunk.start for chunk in chunks] == list(range(0, 5000, 512))
    assert np.array_equal(np.concatenate([chunk.labels for chunk in chunks]), np.arange(5000) % 10)
    assert [name for chunk in chunks for name in chunk.names][4999] == "array#4999"
    assert 2 <= service.max_outstanding <= 3
    assert_same_items(sorted(service.posted_ids()), list(range(5000)), "posted image ids")


def test_a_failed_job_is_reported_with_its_images_and_the_rest_scored(service, client, tmp_path):
    service.failure = lambda ids: "the model failed" if 1024 in ids else None
    summary = score_file(client, numbered_images(3000), tmp_path / "out.jsonl", chunk=1024)
    rows = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(rows) == 3000
    assert rows[1024] == {"name": "array#1024", "error": "the model failed"}
    assert all(rows[i] == {"name": f"array#{i}", "error": "the model failed"} for i in range(1024, 2048))
    scored = [*range(1024), *range(2048, 3000)]
    assert [rows[i]["labels"][0] for i in scored] == [i % 10 for i in scored]
    assert summary.failures == [{"chunk": 1, "start": 1024, "stop": 2048, "first": "array#1024",
                                 "last": "array#2047", "error": "the model failed"}]
    assert summary.failed_images == 1024 and summary.scored == 1976
    assert summary.state_file.exists()  # what failed stays on record


def test_a_refused_chunk_is_a_failed_chunk_and_a_refused_client_stops_the_run(service, client, tmp_path):
    service.script.append((413, {}, orjson.dumps({"error": "request too large"})))
    summary = score_file(client, numbered_images(20), tmp_path / "out.csv", chunk=10, concurrency=1)
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [row["error"] for row in rows] == ["refused (413): request too large"] * 10 + [""] * 10
    assert summary.failed_images == 10

    service.script.append((401, {}, orjson.dumps({"error": "missing or wrong API key"})))
    with pytest.raises(HttpError, match="401: missing or wrong API key"):
        score_file(client, numbered_images(20), tmp_path / "again.csv", chunk=10, concurrency=1)


def test_ordered_hands_back_in_order_and_raises_a_tasks_error_in_its_turn():
    task_1_ran = threading.Event()
    ran: list[int] = []

    def task(i: int):
        def run() -> int:
            if i == 0:
                task_1_ran.wait(5)  # the first finishes after the second
            ran.append(i)
            if i == 1:
                task_1_ran.set()
            if i == 3:
                raise RuntimeError("task 3 broke")
            return i
        return run

    handed: list[int] = []
    with pytest.raises(RuntimeError, match="task 3 broke"):
        handed.extend(ordered((task(i) for i in range(20)), concurrency=2, window=4))
    assert handed == [0, 1, 2]
    assert ran.index(1) < ran.index(0)
    assert max(ran) < 8  # never more than the window ahead of what was handed back
