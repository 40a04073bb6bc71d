"""The page and its assets are served, without the API key, while the API itself still needs it."""

from __future__ import annotations

import fakeredis
import pytest

from api.app import create_app
from inferq.jobs import JobStore
from inferq.settings import Settings

KEY = "s3cret"


class NoImagesStore(JobStore):
    """These tests send no images: a job store that refuses to admit any."""

    def admit(self, *args: object, **kwargs: object) -> list[int | None]:
        raise AssertionError("no image should be sent")


def client_for(api_key: str | None):
    client = fakeredis.FakeRedis()
    store = NoImagesStore(client, result_ttl_s=60, depth_limits=Settings().depth_limits)
    app = create_app(Settings(api_key=api_key), redis_client=client, store=store)
    return app.test_client()


@pytest.mark.parametrize("api_key", [None, KEY])
def test_the_page_is_html_that_links_its_script_and_style(api_key: str | None) -> None:
    client = client_for(api_key)
    page = client.get("/")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for asset, mimetype in [("/static/web.js", "text/javascript"), ("/static/web.css", "text/css")]:
        assert f'"{asset}"' in html
        served = client.get(asset)
        assert (served.status_code, served.mimetype) == (200, mimetype)
        assert served.get_data()


def test_with_a_key_set_the_page_loads_but_the_api_it_calls_needs_the_key() -> None:
    client = client_for(KEY)
    assert client.get("/").status_code == 200
    refused = client.get("/status")
    assert refused.status_code == 401
    assert "API key" in refused.get_json()["error"]
    assert client.get("/status", headers={"Authorization": f"Bearer {KEY}"}).get_json()["ready"] is False


def test_the_page_has_what_its_script_drives() -> None:
    html = client_for(None).get("/").get_data(as_text=True)
    for element in ['id="pad"', 'id="recognise"', 'id="clear"', 'id="files"', 'id="folder"', "webkitdirectory",
                    'id="key-form"', 'for="api-key"', 'id="results"', 'id="status-ready"']:
        assert element in html
    assert html.count('class="digit"') == 10


def test_an_unknown_asset_is_a_json_404() -> None:
    response = client_for(KEY).get("/static/nothing.js")
    assert response.status_code == 404
    assert response.get_json() == {"error": "no such route"}
