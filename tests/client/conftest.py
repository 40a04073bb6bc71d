from __future__ import annotations

from collections.abc import Iterator

import pytest

from inferq.client import Client, RetryPolicy
from tests.client.fake_service import FakeService, serve

#: Retries as the client makes them, but quick: the fake service asks for no waiting.
QUICK_RETRIES = RetryPolicy(patience_s=10, backoff_s=0.01, max_backoff_s=0.05)


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService()
    server = serve(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(service) -> Iterator[Client]:
    made = Client(service.url, retry=QUICK_RETRIES)
    yield made
    made.stop()
