"""Every error a Redis failover raises is the broker's 503 with Retry-After, never a 500."""

import pytest
import redis
from flask import Flask
from redis.sentinel import MasterNotFoundError, SlaveNotFoundError

from api.error_responses import register_error_handlers
from inferq.replication import NotReplicated
from tests.support.stand_in import BROKER_UNREACHABLE


@pytest.mark.parametrize("error", [
    MasterNotFoundError("No master found for 'mymaster'"),  # the Sentinels know of none yet
    SlaveNotFoundError("No slave found for 'mymaster'"),
    redis.ConnectionError("The previous master is now a slave"),  # redis-py's word for a demoted master
    redis.ReadOnlyError("You can't write against a read only replica."),
    NotReplicated("0 of 1 replicas acknowledged the write within 500 ms"),
    redis.TimeoutError("Timeout reading from socket"),
])
def test_errors_of_a_failover_are_the_brokers_503(error):
    app = Flask(__name__)
    register_error_handlers(app)

    @app.get("/")
    def fail():
        raise error

    response = app.test_client().get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json() == BROKER_UNREACHABLE
