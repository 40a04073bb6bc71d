"""A worker process's heartbeat: what it publishes, and that it beats when the repository cannot be read."""

from __future__ import annotations

from inferq.catalog import ModelCatalog
from inferq.workers import WorkerRegistry
from tests.support.specs import go_server_spec, mnist_spec
from worker.heartbeat import Heartbeat
from worker.metrics import WorkerMetrics


class FakeModels:
    """What the heartbeat asks of ``ServedModels``."""

    def __init__(self, specs, gone=(), fail: Exception | None = None) -> None:
        self._specs = list(specs)
        self.gone = list(gone)
        self.fail = fail
        self.refreshes = 0

    def refresh(self) -> None:
        self.refreshes += 1
        if self.fail is not None:
            raise self.fail

    def specs(self):
        return list(self._specs)

    def take_gone(self):
        gone, self.gone = self.gone, []
        return gone


def heartbeat(fake_redis, models: FakeModels) -> Heartbeat:
    return Heartbeat(WorkerRegistry(fake_redis, heartbeat_interval_s=2), ModelCatalog(fake_redis), models,
                     WorkerMetrics(), 2)


def test_a_beat_publishes_the_models_served_and_forgets_those_gone(fake_redis):
    ModelCatalog(fake_redis).publish([go_server_spec(1, name="old")])
    beat = heartbeat(fake_redis, FakeModels([mnist_spec(2), mnist_spec(3), go_server_spec(1, name="legacy")],
                                            gone=["old"]))
    beat.beat()
    assert ModelCatalog(fake_redis).models() == {"legacy": [go_server_spec(1, name="legacy")],
                                                 "mnist": [mnist_spec(2), mnist_spec(3)]}
    [status] = WorkerRegistry(fake_redis, heartbeat_interval_s=2).live()
    assert status.name == beat.name
    assert status.models == [mnist_spec(2), mnist_spec(3), go_server_spec(1, name="legacy")]


def test_a_repository_that_cannot_be_read_still_beats_with_the_models_held(fake_redis):
    models = FakeModels([mnist_spec(2)], fail=PermissionError("models/: permission denied"))
    heartbeat(fake_redis, models).tick()
    assert models.refreshes == 1
    [status] = WorkerRegistry(fake_redis, heartbeat_interval_s=2).live()
    assert status.models == [mnist_spec(2)]


def test_a_tick_refreshes_then_beats(fake_redis):
    models = FakeModels([mnist_spec(4)])
    heartbeat(fake_redis, models).tick()
    assert models.refreshes == 1
    assert ModelCatalog(fake_redis).models() == {"mnist": [mnist_spec(4)]}
