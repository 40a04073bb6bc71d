"""Callbacks with a real worker and a real HTTP receiver: signed, retried, at least once, allowed only
where the allow-list says."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from inferq import callbacks, keys
from tests.conftest import png_bytes
from tests.support.models import build_model
from tests.support.specs import mnist_spec, publish
from tests.support.waiting import wait_for

SECRET = callbacks.new_secret()
KEY = callbacks.signing_key(SECRET)


class Receiver:
    """A local HTTP server that records every POST and answers each path its own way: ``/ok`` 200,
    ``/flaky`` 500 twice then 200, ``/never`` 500, ``/hold`` keeps its first request unanswered
    until ``release`` is set, then 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    seen = sum(path == self.path for path, _, _ in receiver.posts)
                status = 200
                if self.path == "/flaky" and seen <= 2 or self.path == "/never":
                    status = 500
                if self.path == "/hold" and seen == 1:
                    receiver.release.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status >= 300 else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def to(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(headers, body) for seen, headers, body in self.posts if seen == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def settings_for(receiver: Receiver, **more: object) -> dict[str, object]:
    return {"callback_allowed_urls": receiver.url + "/", "callback_secret": SECRET, "callback_backoff_s": 0.2,
            "callback_max_attempts": 3, "callback_timeout_s": 1, **more}


def form(image: np.ndarray, **fields: str) -> dict:
    return {"image": [(io.BytesIO(png_bytes(image)), "digit.png")], **fields}


def submit(client, image: np.ndarray, callback: str, *, as_query: bool = False) -> str:
    response = (client.post("/jobs", query_string={"callback": callback}, data=form(image)) if as_query
                else client.post("/jobs", data=form(image, callback=callback)))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["job_id"]


def delivery(client, job_id: str) -> dict:
    return client.get(f"/jobs/{job_id}").get_json()["callback"]


def test_a_finished_job_is_posted_signed_retried_and_marked(start_worker, make_client, receiver, tmp_path,
                                                            mnist_test):
    build_model(tmp_path / "models", 1, label=5)
    start_worker(tmp_path / "models", **settings_for(receiver))
    client = make_client(**settings_for(receiver))
    images = mnist_test[0]
    ok = submit(client, images[0], receiver.url + "/ok")
    flaky = submit(client, images[1], receiver.url + "/flaky", as_query=True)
    never = submit(client, images[2], receiver.url + "/never")
    assert delivery(client, ok)["url"] == receiver.url + "/ok"

    # One signed POST of the final record, as GET /jobs/<id> shows it.
    wait_for(lambda: delivery(client, ok)["status"] == "delivered", 60, "the callback to be delivered")
    [(headers, body)] = receiver.to("/ok")
    assert headers["webhook-id"] == ok and headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert callbacks.verify(KEY, headers, body, now=float(headers["webhook-timestamp"]))
    assert not callbacks.verify(callbacks.signing_key(callbacks.new_secret()), headers, body,
                                now=float(headers["webhook-timestamp"]))
    posted, shown = json.loads(body), client.get(f"/jobs/{ok}").get_json()
    assert posted["status"] == "done" and posted["result"]["results"][0]["labels"] == [5]
    assert posted["callback"] == {"url": receiver.url + "/ok", "status": "pending", "attempts": 0, "last_error": None}
    assert shown["callback"] == {"url": receiver.url + "/ok", "status": "delivered", "attempts": 1, "last_error": None}
    assert {**posted, "callback": None} == {**shown, "callback": None}

    # Failing twice, then accepted: delivered on the third attempt, the same message each time.
    wait_for(lambda: delivery(client, flaky)["status"] == "delivered", 60, "the flaky receiver to accept")
    assert delivery(client, flaky) == {"url": receiver.url + "/flaky", "status": "delivered", "attempts": 3,
                                       "last_error": None}
    assert [headers["webhook-id"] for headers, _ in receiver.to("/flaky")] == [flaky] * 3
    assert all(callbacks.verify(KEY, headers, body, now=float(headers["webhook-timestamp"]))
               for headers, body in receiver.to("/flaky"))

    # Never accepted: failed after CALLBACK_MAX_ATTEMPTS, with the last error.
    wait_for(lambda: delivery(client, never)["status"] == "failed", 60, "the callback to fail for good")
    assert delivery(client, never)["attempts"] == 3 and "HTTP 500" in delivery(client, never)["last_error"]
    assert len(receiver.to("/never")) == 3
    assert len(receiver.to("/ok")) == 1  # delivered once, never again


def test_a_deliverer_killed_mid_delivery_leaves_it_to_another_worker(start_worker, make_client, receiver,
                                                                     redis_url, tmp_path, mnist_test):
    build_model(tmp_path / "models", 1, label=2)
    first = start_worker(tmp_path / "models", **settings_for(receiver))
    client = make_client(**settings_for(receiver))
    job = submit(client, mnist_test[0][0], receiver.url + "/hold")
    wait_for(lambda: receiver.to("/hold"), 60, "the first POST to arrive")
    first.kill()  # while its POST waits for an answer
    assert delivery(client, job) == {"url": receiver.url + "/hold", "status": "pending", "attempts": 0,
                                     "last_error": None}
    receiver.release.set()
    start_worker(tmp_path / "models", **settings_for(receiver))
    wait_for(lambda: delivery(client, job)["status"] == "delivered", 90, "another worker to deliver it")
    posts = receiver.to("/hold")
    assert len(posts) == 2 and {headers["webhook-id"] for headers, _ in posts} == {job}
    assert delivery(client, job)["attempts"] == 1
    assert redis.Redis.from_url(redis_url).zcard(keys.CALLBACKS_DUE) == 0


def test_callbacks_outside_the_allow_list_are_refused_and_nothing_is_queued(make_client, receiver, redis_url,
                                                                            mnist_test):
    publish(redis_url, mnist_spec(1))
    client = make_client(**settings_for(receiver))
    store = redis.Redis.from_url(redis_url)
    image = mnist_test[0][0]
    other_host = receiver.url.replace("127.0.0.1", "localhost") + "/ok"
    for url, status in [("http://169.254.169.254/latest/meta-data/", 422), (other_host, 422),
                        ("https://example.com/x", 422), ("ftp://127.0.0.1/x", 400), ("not a url", 400)]:
        refused = client.post("/jobs", data=form(image, callback=url))
        assert refused.status_code == status, (url, refused.get_json())
        assert refused.get_json()["reason"] == "callback" and refused.get_json()["error"]
        refused = client.post("/models/mnist/jobs", query_string={"callback": url}, data=form(image))
        assert refused.status_code == status, (url, refused.get_json())
    closed = make_client()  # no allow-list: no callbacks at all
    refused = closed.post("/jobs", data=form(image, callback=receiver.url + "/ok"))
    assert refused.status_code == 422 and "not enabled" in refused.get_json()["error"]
    assert store.keys(keys.job("*")) == [] and store.keys("q*") == []
    assert int(store.get(keys.queued_images("mnist", "bulk")) or 0) == 0
