"""A worker process's heartbeat: what it publishes, and that it beats when the repository cannot be read."""

from __future__ import annotations

import threading

from inferq.catalog import ModelCatalog
from inferq.worker_registry import WorkerRegistry
from tests.support.specs import go_server_spec, mnist_spec
from tests.support.waiting import wait_for
from worker.heartbeat import Heartbeat
from worker.metrics import WorkerMetrics


class FakeModels:
    """What the heartbeat asks of ``LoadedModels``."""

    def __init__(self, specs, gone=(), fail: Exception | None = None, failures=()) -> None:
        self._specs = list(specs)
        self.gone = list(gone)
        self.fail = fail
        self.failures = list(failures)
        self.refreshes = 0
        #: While set, a refresh waits for it to clear: a model loading for long.
        self.hold: threading.Event | None = None
        self.held = threading.Event()

    def refresh(self) -> None:
        self.refreshes += 1
        if self.hold is not None:
            self.held.set()
            assert self.hold.wait(10)
        if self.fail is not None:
            raise self.fail

    def load_failures(self):
        return list(self.failures)

    def specs(self):
        return list(self._specs)

    def take_gone(self):
        gone, self.gone = self.gone, []
        return gone


def heartbeat(fake_redis, models: FakeModels, interval_s: float = 2) -> Heartbeat:
    return Heartbeat(WorkerRegistry(fake_redis, heartbeat_interval_s=interval_s), ModelCatalog(fake_redis), models,
                     WorkerMetrics(), interval_s)


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


def test_a_beat_says_which_versions_failed_to_load(fake_redis):
    failure = {"model": "mnist", "version": 3, "attempts": 2, "error": "no variables"}
    heartbeat(fake_redis, FakeModels([mnist_spec(2)], failures=[failure])).beat()
    [status] = WorkerRegistry(fake_redis, heartbeat_interval_s=2).live()
    assert status.load_failures == [failure]


class CountingRegistry(WorkerRegistry):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.beats = 0

    def publish(self, status) -> None:
        super().publish(status)
        self.beats += 1


def test_the_process_keeps_beating_while_a_look_at_the_repository_loads_a_model(fake_redis):
    # Loading a version takes long under CPU load; a heartbeat that waited on it expired (three
    # intervals) while the process was alive and serving, and the API saw no worker.
    models = FakeModels([mnist_spec(2)])
    models.hold = threading.Event()
    registry = CountingRegistry(fake_redis, heartbeat_interval_s=0.05)
    beat = Heartbeat(registry, ModelCatalog(fake_redis), models, WorkerMetrics(), 0.05)
    beat.start()
    try:
        assert models.held.wait(5)
        beats = registry.beats
        wait_for(lambda: registry.beats >= beats + 5, 5, "beats while the repository's look is loading")
        assert [status.name for status in registry.live()] == [beat.name]
    finally:
        models.hold.set()
        beat.stop()


def test_the_repository_thread_runs_its_chores_every_interval_whatever_one_raises(fake_redis):
    calls = []

    def failing() -> None:
        calls.append("failing")
        raise RuntimeError("a chore broke")

    beat = Heartbeat(WorkerRegistry(fake_redis, heartbeat_interval_s=0.05), ModelCatalog(fake_redis),
                     FakeModels([mnist_spec(1)]), WorkerMetrics(), 0.05,
                     chores=[failing, lambda: calls.append("after")])
    beat.start()
    try:
        wait_for(lambda: calls.count("after") >= 2, 10, "two rounds of chores")
    finally:
        beat.stop()
    assert calls.count("failing") >= 2
