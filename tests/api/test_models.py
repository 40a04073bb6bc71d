"""The image routes of every model of the repository, ``/models/<name>[/versions/<v>]/recognize`` and
``.../jobs``, on the stand-in worker: models that are not MNIST, their versions, and the answers
their outputs make."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest

from inferq.catalog import ModelCatalog
from inferq.priorities import BULK, INTERACTIVE
from tests.conftest import png_bytes
from tests.support.specs import CIFAR_LABELS, image_classifier_spec, mnist_spec, tabular_spec
from tests.support.stand_in import STAND_IN_VERSION, fake_label, publish_heartbeat

#: The stand-in's class scores for item i: class k scores (k + 1) / 55, rolled by i, so that item i's
#: best class is (9 + i) % 10 and each item's ranking differs.
BASE_SCORES = np.arange(1, 11, dtype=np.float32) / 55


def scores(job) -> np.ndarray:
    return np.stack([np.roll(BASE_SCORES, index) for index in range(job.count)])


def stored(values: object) -> object:
    """``values`` as the job store gives them back: float32 written as the shortest text that reads back."""
    return orjson.loads(orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY))


def top_of(index: int) -> list[dict]:
    """What ``top`` says of item ``index``: its five best classes, best first."""
    row = stored(np.roll(BASE_SCORES, index))
    ranked = np.argsort(-np.array(row), kind="stable")[:5]
    return [{"label": CIFAR_LABELS[k], "score": row[k]} for k in ranked]


def rgb(count: int, random_seed: int = 0) -> np.ndarray:
    return np.random.default_rng(random_seed).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)


def files(*images: np.ndarray, names: list[str] | None = None) -> dict:
    names = names or [f"{index}.png" for index in range(len(images))]
    return {"image": [(io.BytesIO(png_bytes(image)), name) for image, name in zip(images, names, strict=True)]}


@pytest.fixture
def repository(make_app, serve):
    """An app whose workers serve MNIST, an RGB classifier at versions 1 and 2, and a tabular model."""
    serve(specs=[mnist_spec(STAND_IN_VERSION), image_classifier_spec(1), image_classifier_spec(2), tabular_spec(1)])
    app, worker = make_app()
    worker.outputs["scores"] = scores
    return app.test_client(), worker


def test_an_image_classifier_answers_its_class_names_and_top_classes(repository):
    client, worker = repository
    [image] = rgb(1)
    response = client.post("/models/cifar/recognize", data=files(image, names=["ship.png"]))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body == {"filename": "ship.png", "labels": ["truck"], "top": top_of(0),
                    "outputs": {"scores": stored(BASE_SCORES)}, "model_version": 2,
                    "job_id": body["job_id"]}
    assert [label["label"] for label in body["top"]] == ["truck", "ship", "horse", "frog", "dog"]
    [job] = worker.sent
    assert worker.models == ["cifar"] and job.version is None and job.priority == INTERACTIVE
    # The pixels as decoded, kept uint8 (scale 0..255): the worker casts to float32.
    assert job.inputs["image"].dtype == np.uint8 and np.array_equal(job.inputs["image"], image[np.newaxis])


def test_several_images_answer_each_its_own_classes_in_upload_order(repository):
    client, worker = repository
    results = client.post("/models/cifar/recognize", data=files(*rgb(3))).get_json()["results"]
    assert [result["filename"] for result in results] == ["0.png", "1.png", "2.png"]
    assert [result["labels"] for result in results] == [["truck"], ["airplane"], ["automobile"]]
    assert [result["top"] for result in results] == [top_of(0), top_of(1), top_of(2)]
    assert len(worker.sent) == 1 and worker.sent[0].count == 3


def test_scores_that_are_not_numbers_rank_last_and_are_null(repository):
    """A model version that gives NaN for a class (JSON has no NaN: the job store holds null)."""
    client, worker = repository
    worker.outputs["scores"] = lambda job: np.array([[np.nan, 0.1, 0.3] + [0.0] * 7], np.float32)
    response = client.post("/models/cifar/recognize", data=files(*rgb(1)))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["labels"] == ["bird"]
    assert body["top"] == [{"label": "bird", "score": stored(np.float32(0.3))},
                           {"label": "automobile", "score": stored(np.float32(0.1))},
                           {"label": "cat", "score": 0.0}, {"label": "deer", "score": 0.0},
                           {"label": "dog", "score": 0.0}]
    worker.outputs["scores"] = lambda job: np.full((1, 10), np.nan, np.float32)
    body = client.post("/models/cifar/recognize", data=files(*rgb(1))).get_json()
    assert body["labels"] == ["airplane"] and body["top"][0] == {"label": "airplane", "score": None}


def test_a_bulk_file_of_rgb_images(repository):
    client, worker = repository
    images = rgb(4, random_seed=1)
    buffer = io.BytesIO()
    np.save(buffer, images)
    body = client.post("/models/cifar/recognize", data={"images": [(io.BytesIO(buffer.getvalue()), "b.npy")]})
    assert [result["filename"] for result in body.get_json()["results"]] == [f"b.npy#{index}" for index in range(4)]
    assert np.array_equal(worker.sent[0].inputs["image"], images)


def test_a_job_for_a_model_is_queued_then_polled_with_its_model(repository):
    client, worker = repository
    accepted = client.post("/models/cifar/jobs", data=files(*rgb(2)))
    assert accepted.status_code == 202
    body = accepted.get_json()
    assert body == {"job_id": body["job_id"], "status": "queued", "model": "cifar", "priority": BULK, "images": 2,
                    "location": f"/jobs/{body['job_id']}"}
    assert accepted.headers["Location"] == body["location"]
    job = client.get(body["location"]).get_json()
    assert (job["status"], job["model"], job["priority"], job["images"]) == ("done", "cifar", BULK, 2)
    assert [result["labels"] for result in job["result"]["results"]] == [["truck"], ["airplane"]]
    assert job["result"]["results"][1]["top"] == top_of(1)
    assert worker.sent[0].priority == BULK


def test_a_pinned_version_is_asked_of_the_worker_and_answers(repository):
    client, worker = repository
    pinned = client.post("/models/cifar/versions/1/recognize", data=files(*rgb(1))).get_json()
    assert pinned["model_version"] == 1 and worker.sent[-1].version == 1
    queued = client.post("/models/cifar/versions/1/jobs", data=files(*rgb(1)))
    assert queued.status_code == 202 and worker.sent[-1].version == 1
    assert client.get(queued.headers["Location"]).get_json()["result"]["results"][0]["model_version"] == 1
    newest = client.post("/models/cifar/recognize", data=files(*rgb(1))).get_json()
    assert newest["model_version"] == 2 and worker.sent[-1].version is None


def test_an_answer_from_another_version_than_the_one_pinned_is_503(repository):
    client, worker = repository
    worker.version = 2  # a worker moving between versions answers at 2
    response = client.post("/models/cifar/versions/1/recognize", data=files(*rgb(1)))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == {"error": "version 1 was asked for but version 2 answered: the workers are "
                                            "changing versions; try again"}
    assert worker.sent[-1].version == 1
    assert client.post("/models/cifar/recognize", data=files(*rgb(1))).status_code == 200  # none asked: any


def test_a_model_that_takes_no_images_refuses_uploads_naming_its_inputs(repository, digit_104):
    client, worker = repository
    for path in ("/models/iris/recognize", "/models/iris/jobs", "/models/iris/versions/1/recognize"):
        response = client.post(path, data={"image": [(io.BytesIO(digit_104), "104.png")]})
        assert response.status_code == 400, path
        assert response.get_json() == {"error": "model 'iris' does not take images (its inputs: features float32 "
                                                "[-1, 4]); send tensors through /v1/models/... (TF Serving) or "
                                                "/v2/models/... (KServe)"}
    assert worker.sent == []


@pytest.mark.parametrize(("path", "message"), [
    ("/models/fashion/recognize", "no model 'fashion'; served: 'cifar', 'iris', 'mnist'"),
    ("/models/fashion/jobs", "no model 'fashion'; served: 'cifar', 'iris', 'mnist'"),
    ("/models/cifar/versions/7/recognize", "model 'cifar' version 7 is not served; served: 1, 2"),
    ("/models/cifar/versions/7/jobs", "model 'cifar' version 7 is not served; served: 1, 2"),
])
def test_an_unknown_model_or_version_is_404_and_nothing_is_queued(repository, path, message):
    client, worker = repository
    response = client.post(path, data=files(*rgb(1)))
    assert (response.status_code, response.get_json()) == (404, {"error": message})
    assert worker.sent == []


def test_the_default_routes_are_the_default_models(repository, digit_104, mnist_test):
    client, worker = repository
    upload = {"image": [(io.BytesIO(digit_104), "104.png")]}
    default = client.post("/recognize", data=upload).get_json()
    upload = {"image": [(io.BytesIO(digit_104), "104.png")]}
    named = client.post("/models/mnist/recognize", data=upload).get_json()
    for body in (default, named):
        assert body["labels"] == [fake_label(mnist_test[0][104])] and len(body["probabilities"]) == 10
        assert body["model_version"] == STAND_IN_VERSION and "top" not in body and "outputs" not in body
    assert worker.models == ["mnist", "mnist"]
    accepted = client.post("/jobs", data={"image": [(io.BytesIO(digit_104), "104.png")]})
    assert accepted.get_json()["model"] == "mnist"
    assert client.get(accepted.headers["Location"]).get_json()["model"] == "mnist"


def test_another_default_model(make_app, serve):
    serve(specs=[image_classifier_spec(1)])
    app, worker = make_app(default_model="cifar")
    worker.outputs["scores"] = scores
    body = app.test_client().post("/recognize", data=files(*rgb(1))).get_json()
    assert body["labels"] == ["truck"] and worker.models == ["cifar"]


def test_each_models_queue_has_its_own_limit(make_app, serve, digit_104):
    serve(specs=[mnist_spec(STAND_IN_VERSION), image_classifier_spec(1)])
    app, worker = make_app(max_queue_depth=1, max_images_per_request=1)
    worker.answer = False  # nothing drains
    client = app.test_client()
    assert client.post("/jobs", data={"image": [(io.BytesIO(digit_104), "a")]}).status_code == 202
    full = client.post("/jobs", data={"image": [(io.BytesIO(digit_104), "b")]})
    assert full.status_code == 503 and full.get_json()["model"] == "mnist"
    assert client.post("/models/cifar/jobs", data=files(*rgb(1))).status_code == 202


def test_a_job_of_a_model_no_longer_served_still_answers_without_class_names(repository, fake_redis):
    client, _ = repository
    location = client.post("/models/cifar/jobs", data=files(*rgb(1))).headers["Location"]
    ModelCatalog(fake_redis).remove(["cifar"])
    publish_heartbeat(fake_redis, specs=[mnist_spec(STAND_IN_VERSION)])  # its worker serves MNIST alone now
    job = client.get(location).get_json()
    assert (job["status"], job["model"]) == ("done", "cifar")
    assert job["result"]["results"] == [{"filename": "0.png", "outputs": {"scores": stored(BASE_SCORES)},
                                         "model_version": 2}]
