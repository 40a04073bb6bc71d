"""Schemathesis drives every route with requests generated from /openapi.json: no server errors.

The app runs in process on fakeredis with the stand-in worker, and with a worker heartbeat, so
that requests reach the queue and the protocol routes find a model.
"""

from __future__ import annotations

import fakeredis
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from inferq.settings import Settings
from tests.support.stand_in import publish_heartbeat, stand_in_app

_redis = fakeredis.FakeRedis()
_settings = Settings(sync_timeout_s=0.05)
_app, _worker = stand_in_app(_settings, _redis)
schema = schemathesis.openapi.from_wsgi("/openapi.json", _app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_generated_request_gets_a_server_error(case):
    publish_heartbeat(_redis)
    # A request can match the schema yet not be an image or a tensor of pixels: a 4xx is right then.
    # And the API is lenient past what the schema says about fields it ignores.
    response = case.call()
    case.validate_response(response, excluded_checks=[positive_data_acceptance, negative_data_rejection,
                                                      not_a_server_error])
    # The one 5xx that is not ours: the deadline a request set itself (timeout_ms) passed first.
    asked_for_a_deadline = "timeout_ms" in (case.query or {}) or "timeout_ms" in (
        case.body if isinstance(case.body, dict) else {})
    assert response.status_code < 500 or (response.status_code == 504 and asked_for_a_deadline), (
        response.status_code, response.text)
