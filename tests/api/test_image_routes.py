"""The image routes (api/images/routes.py): ``POST /recognize`` and ``/jobs`` on the stand-in worker, from the
Go server's curl call to bulk files, refusals and back-pressure."""

import io
import uuid

import pytest

from tests.conftest import png_bytes
from tests.support.stand_in import BROKER_UNREACHABLE, fake_label


def files(*uploads):
    return {"image": [(io.BytesIO(data), name) for name, data in uploads]}


def test_the_seeds_curl_call_answers_as_the_seed_did(client, digit_104, mnist_test):
    response = client.post("/recognize", data=files(("104.png", digit_104)))
    assert response.status_code == 200
    body = response.get_json()
    assert body["filename"] == "104.png"
    assert body["labels"] == [fake_label(mnist_test[0][104])]
    assert body["model_version"] == 3 and len(body["probabilities"]) == 10
    uuid.UUID(body["job_id"])


def test_several_images_answer_in_upload_order(client, mnist_test, worker):
    images = mnist_test[0][:5]
    response = client.post("/recognize", data=files(*[(f"{i}.png", png_bytes(img)) for i, img in enumerate(images)]))
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [r["filename"] for r in results] == [f"{i}.png" for i in range(5)]
    assert [r["labels"] for r in results] == [[fake_label(img)] for img in images]
    assert len(worker.sent) == 1 and worker.sent[0].count == 5


def test_filenames_are_echoed_never_interpreted(client, digit_104):
    names = ["../../etc/passwd", "ünïcödé ✓.png", "", "C:/Windows/system.ini"]
    response = client.post("/recognize", data=files(*[(name, digit_104) for name in names]))
    assert [r["filename"] for r in response.get_json()["results"]] == names


def test_an_async_job_is_queued_then_polled(client, digit_104):
    response = client.post("/jobs", data=files(("a.png", digit_104), ("b.png", digit_104)))
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued" and body["images"] == 2
    assert response.headers["Location"] == f"/jobs/{body['job_id']}"

    job = client.get(response.headers["Location"]).get_json()
    assert job["status"] == "done" and job["error"] is None
    assert [r["filename"] for r in job["result"]["results"]] == ["a.png", "b.png"]
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_no_answer_in_time_is_a_504_with_a_job_to_poll(make_app, serve, digit_104):
    serve()
    app, worker = make_app(sync_timeout_s=0.05)
    worker.answer = False
    response = app.test_client().post("/recognize", data=files(("104.png", digit_104)))
    assert response.status_code == 504
    body = response.get_json()
    assert "no answer within" in body["error"]
    assert app.test_client().get(f"/jobs/{body['job_id']}").get_json()["status"] == "queued"


def test_a_failed_model_call_is_a_json_500_and_a_failed_job(client, worker, digit_104):
    worker.model_error = "model version 3 failed on this batch: boom"
    response = client.post("/recognize", data=files(("104.png", digit_104)))
    assert response.status_code == 500
    body = response.get_json()
    assert "boom" in body["error"]
    job = client.get(f"/jobs/{body['job_id']}").get_json()
    assert job["status"] == "failed" and "boom" in job["error"] and job["result"] is None


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "..%2F..%2Fetc", "0" * 500])
def test_unknown_and_malformed_job_ids_are_404(client, job_id):
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 404
    assert response.get_json()["error"].startswith(("no job", "no such route"))


def test_backpressure_refuses_past_the_queue_depth(make_app, serve, digit_104):
    serve()
    app, worker = make_app(max_queue_depth=3, max_images_per_request=3)
    worker.answer = False
    client = app.test_client()
    assert client.post("/jobs", data=files(("a", digit_104), ("b", digit_104))).status_code == 202
    refused = client.post("/jobs", data=files(("c", digit_104), ("d", digit_104)))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert "queue is full" in refused.get_json()["error"]
    assert client.post("/jobs", data=files(("e", digit_104))).status_code == 202


def test_a_broker_that_refuses_the_message_is_a_503_and_nothing_stays_admitted(client, worker, digit_104):
    worker.broker_down = True
    response = client.post("/recognize", data=files(("104.png", digit_104)))
    assert response.status_code == 503
    assert response.get_json() == BROKER_UNREACHABLE
    assert worker.store.queued_images(["mnist"]) == {"mnist": {"interactive": 0, "bulk": 0}}


@pytest.mark.parametrize("unreachable", ["unreachable_redis", "unreachable_sentinels"])
def test_redis_out_of_reach_is_a_503_never_a_500(make_app, digit_104, request, unreachable):
    app, _ = make_app(redis_client=request.getfixturevalue(unreachable))
    client = app.test_client()
    for response in (client.post("/recognize", data=files(("104.png", digit_104))),
                     client.post("/jobs", data=files(("104.png", digit_104))),
                     client.get(f"/jobs/{uuid.uuid4()}")):
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.get_json() == BROKER_UNREACHABLE


def test_images_count_as_accepted_in_the_metrics(client, digit_104):
    client.post("/recognize", data=files(("a", digit_104), ("b", digit_104)))
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'inferq_images_accepted_total{model="mnist"} 2.0' in metrics
    assert 'inferq_http_requests_total{method="POST",route="/recognize",status="200"} 1.0' in metrics


def idx_file(images) -> bytes:
    import struct

    return struct.pack(">IIII", 0x00000803, len(images), 28, 28) + images.tobytes()


def npy_file(images) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, images.reshape(len(images), -1))
    return buffer.getvalue()


def test_a_bulk_file_of_many_images_is_one_job_in_field_order(client, worker, mnist_test, digit_104):
    images = mnist_test[0]
    data = {"images": [(io.BytesIO(idx_file(images[:300])), "batch.idx")],
            "image": [(io.BytesIO(digit_104), "104.png")]}
    response = client.post("/jobs", data=data)
    assert response.status_code == 202 and response.get_json()["images"] == 301
    results = client.get(response.headers["Location"]).get_json()["result"]["results"]
    assert [r["filename"] for r in results[:2]] == ["batch.idx#0", "batch.idx#1"]
    assert [r["labels"][0] for r in results[:300]] == [fake_label(image) for image in images[:300]]
    assert results[300]["filename"] == "104.png"
    assert len(worker.sent) == 1


def test_a_bulk_files_pixels_travel_beside_its_message_unless_an_older_worker_is_alive(app_and_worker, serve,
                                                                                      mnist_test):
    app, worker = app_and_worker
    images = mnist_test[0][:300]  # 235,200 bytes of pixels: more than a message carries inline
    data = {"images": [(io.BytesIO(idx_file(images)), "batch.idx")]}
    stored = app.test_client().post("/recognize", data=data).get_json()
    assert worker.stored == [stored["job_id"]]
    serve(name="old:2", features=())  # a worker of an earlier release: it reads only inline tensors
    inline = app.test_client().post("/recognize", data={"images": [(io.BytesIO(idx_file(images)), "b.idx")]})
    assert worker.stored == [stored["job_id"]] and inline.status_code == 200
    for body in (stored, inline.get_json()):
        assert [r["labels"][0] for r in body["results"]] == [fake_label(image) for image in images]


def test_a_bulk_file_past_werkzeugs_spooling_size_is_read_in_memory(client, worker, mnist_test, monkeypatch):
    import werkzeug.formparser

    def no_temporary_files(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_temporary_files)
    images = mnist_test[0][:1024]  # 802,832 bytes: werkzeug's own parser spools past 500 KB
    response = client.post("/jobs", data={"images": [(io.BytesIO(idx_file(images)), "batch.idx")]})
    assert response.status_code == 202 and response.get_json()["images"] == 1024
    results = client.get(response.headers["Location"]).get_json()["result"]["results"]
    assert [r["labels"][0] for r in results] == [fake_label(image) for image in images]


def test_a_npy_file_works_as_well(client, mnist_test):
    images = mnist_test[0][:5]
    body = client.post("/recognize", data={"images": [(io.BytesIO(npy_file(images)), "five.npy")]}).get_json()
    assert [r["labels"] for r in body["results"]] == [[fake_label(image)] for image in images]


@pytest.mark.parametrize(("content", "words"), [
    (b"\x00\x00\x08\x01" + bytes(8), "neither a .npy file nor an IDX file of images"),
    (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02\x00\x00\x00\x1c\x00\x00\x00\x1c" + bytes(100), "truncated or corrupt"),
    (b"\x93NUMPY garbage", "not a readable .npy file"),
])
def test_broken_bulk_files_are_400(client, worker, content, words):
    response = client.post("/jobs", data={"images": [(io.BytesIO(content), "bad.idx")]})
    assert response.status_code == 400 and words in response.get_json()["error"]
    assert not worker.sent


def test_a_bulk_file_counts_against_the_images_per_request(make_app, serve, mnist_test):
    serve()
    app, _ = make_app(max_images_per_request=10)
    response = app.test_client().post("/jobs", data={"images": [(io.BytesIO(idx_file(mnist_test[0][:11])), "b")]})
    assert response.status_code == 413
