"""What the API shows and takes from whom: browsers of other sites may not post, /readyz names no
model without the API key, and unexpected errors say nothing of the server's files."""

from __future__ import annotations

import io

import numpy as np
import pytest

from inferq.catalog import ModelCatalog
from tests.conftest import png_bytes
from tests.support.specs import tabular_spec
from tests.support.stand_in import publish_heartbeat

IMAGE = png_bytes(np.zeros((28, 28), np.uint8))


def upload() -> dict:
    return {"image": [(io.BytesIO(IMAGE), "a.png")]}


@pytest.fixture
def client(make_app, fake_redis):
    publish_heartbeat(fake_redis)
    return make_app(allowed_origins="https://console.example.com, http://127.0.0.1:3000")[0].test_client()


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},  # a page of another site, posting a form
    {"Origin": "null"},  # a sandboxed frame or a file:// page
    {"Origin": "http://localhost:8081"},  # same host, another port: another origin
    {"Sec-Fetch-Site": "cross-site"},  # a browser that sent no Origin
    {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
])
@pytest.mark.parametrize("path", ["/jobs", "/recognize", "/v1/models/mnist:predict", "/v2/models/mnist/infer"])
def test_a_browsers_post_from_another_site_is_refused(client, headers, path):
    response = client.post(path, data=upload(), headers=headers, base_url="http://localhost")
    assert response.status_code == 403
    body = response.get_json()
    assert body["reason"] == "cross_site" and "cross-site request refused" in body["error"]


@pytest.mark.parametrize("headers", [
    {},  # curl, the Python client, tritonclient: no Origin, no Sec-Fetch-Site
    {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},  # the project's own page
    {"Origin": "http://LOCALHOST:80"},  # the same origin, written otherwise
    {"Origin": "https://console.example.com", "Sec-Fetch-Site": "cross-site"},  # in ALLOWED_ORIGINS
    {"Origin": "http://127.0.0.1:3000"},
    {"Sec-Fetch-Site": "none"},  # typed by the user
])
def test_clients_the_own_page_and_allowed_origins_may_post(client, headers):
    response = client.post("/jobs", data=upload(), headers=headers, base_url="http://localhost")
    assert response.status_code == 202, response.get_json()


def test_a_page_of_another_site_may_still_read_what_is_public(client):
    assert client.get("/healthz", headers={"Origin": "https://evil.example",
                                           "Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_behind_a_proxy_the_public_origin_matches_the_host_it_forwards(make_app, fake_redis):
    publish_heartbeat(fake_redis)
    client = make_app()[0].test_client()
    response = client.post("/jobs", data=upload(), headers={"Origin": "https://inferq.example.com"},
                           base_url="http://inferq.example.com")
    assert response.status_code == 202


def test_an_allowed_origin_must_be_an_origin(make_app):
    with pytest.raises(ValueError, match="ALLOWED_ORIGINS: 'https://x.example/path' is not an origin"):
        make_app(allowed_origins="https://x.example/path")


def test_without_the_api_key_readyz_says_only_ready_or_not(make_app, fake_redis):
    client = make_app(api_key="s3cret")[0].test_client()
    with_key = {"Authorization": "Bearer s3cret"}
    ModelCatalog(fake_redis).publish([tabular_spec(1)])  # a model no live worker serves
    publish_heartbeat(fake_redis, version=4)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/readyz", headers=headers)
        assert response.status_code == 503
        assert response.get_json() == {"error": "not ready", "reason": "no_worker"}
    assert "iris" in client.get("/readyz", headers=with_key).get_json()["error"]

    publish_heartbeat(fake_redis, name="host:2", specs=[tabular_spec(1)])
    response = client.get("/readyz")
    assert response.status_code == 200 and response.get_json() == {"status": "ready"}
    assert client.get("/readyz", headers=with_key).get_json()["models"] == {"iris": [1], "mnist": [4]}


def test_without_an_api_key_set_readyz_says_what_it_serves(make_app, fake_redis):
    publish_heartbeat(fake_redis, version=4)
    assert make_app()[0].test_client().get("/readyz").get_json()["models"] == {"mnist": [4]}


def test_a_failing_route_answers_500_without_the_servers_paths(make_app, caplog):
    app, _ = make_app()
    secret_path = "/srv/inferq/models/mnist/1/variables/variables.index"

    @app.get("/boom")
    def boom():
        raise OSError(f"[Errno 13] Permission denied: '{secret_path}'")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert secret_path not in response.get_data(as_text=True)
    assert response.get_json() == {"error": "internal error; the server log has the details"}
    assert secret_path in caplog.text  # the full text is in the log


def test_a_librarys_error_text_reaches_the_client_without_the_servers_paths(make_app, fake_redis, monkeypatch):
    from api.images import decoding as images

    def failing(data, max_pixels):
        raise images.ImageError("the image is corrupt: cannot read '/usr/lib/python3/site-packages/PIL/x.py' "
                                "from <_io.BytesIO object at 0x7f3a2c1d9e40>")

    monkeypatch.setattr(images, "open_image", failing)
    publish_heartbeat(fake_redis)
    response = make_app()[0].test_client().post("/recognize", data=upload())
    assert response.status_code == 400
    message = response.get_json()["error"]
    assert "/usr/lib" not in message and "0x7f3a" not in message
    assert "the image is corrupt: cannot read '<internal>' from <internal>" in message


@pytest.mark.parametrize("path", ["/jobs/no-such-job", "/v2/models/nope/infer", "/models/nope"])
def test_routes_in_error_texts_are_left_as_they_are(make_app, fake_redis, path):
    publish_heartbeat(fake_redis)
    client = make_app()[0].test_client()
    response = client.post(path, json={}) if path.endswith("infer") else client.get(path)
    assert response.status_code == 404
    assert "<internal>" not in response.get_json()["error"]
