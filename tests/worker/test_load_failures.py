"""A version that fails to load, end to end: a worker's models and heartbeat, the API's /status and
/metrics, on one Redis; loaded by a fake ``load_version``."""

from __future__ import annotations

import shutil

from inferq.catalog import ModelCatalog
from inferq.settings import Settings
from inferq.worker_registry import WorkerRegistry
from tests.worker.fake_loading import add_version
from worker.heartbeat import Heartbeat
from worker.loaded_models import LoadedModels
from worker.metrics import WorkerMetrics
from worker.model_holder import RETRY_FIRST_S, ModelHolder


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_version_that_fails_to_load_shows_in_status_and_metrics_until_a_retry_loads_it(
        loader, make_app, fake_redis, tmp_path):
    add_version(tmp_path / "mnist", 1)
    clock, metrics = Clock(), WorkerMetrics()
    models = LoadedModels(Settings(model_repository=str(tmp_path)), on_load_failure=metrics.record_load_failure,
                          clock=clock)
    beat = Heartbeat(WorkerRegistry(fake_redis, heartbeat_interval_s=2), ModelCatalog(fake_redis), models, metrics, 2)
    api = make_app()[0].test_client()
    loader.refuse.add(("mnist", 2))  # copied in place, its variables not there yet
    add_version(tmp_path / "mnist", 2)
    beat.tick()
    status = api.get("/status").get_json()
    assert status["load_failures"] == [{"worker": beat.name, "model": "mnist", "version": 2, "attempts": 1}]
    assert status["models"]["mnist"]["versions"] == [1]
    assert 'inferq_worker_model_load_failures_total{model="mnist",version="2"} 1.0' in api.get("/metrics").text
    clock.now += 1
    beat.tick()  # tried again, failed again
    assert api.get("/status").get_json()["load_failures"][0]["attempts"] == 2
    loader.refuse.clear()
    clock.now += 2
    beat.tick()
    status = api.get("/status").get_json()
    assert status["load_failures"] == [] and status["models"]["mnist"]["versions"] == [2]
    assert loader.loads == [("mnist", 2), ("mnist", 1), ("mnist", 2), ("mnist", 2)]  # 1 at once in its stead


def test_a_real_savedmodel_copied_in_place_is_served_once_its_copy_is_done(tmp_path):
    # ``cp -r`` straight into place, caught half-way: saved_model.pb there, its variables not yet.
    from tests.support.saved_models import build_tabular

    source = build_tabular(tmp_path / "source")
    target = tmp_path / "repo" / "tabular" / "1"
    target.mkdir(parents=True)
    shutil.copy(source / "saved_model.pb", target)
    clock = Clock()
    holder = ModelHolder("tabular", target.parent, intra_op_threads=1, inter_op_threads=1, clock=clock)
    holder.refresh()
    assert holder.model() is None and list(holder.failures) == [1]
    shutil.copytree(source / "variables", target / "variables")  # the copy goes on
    holder.refresh()  # within its backoff
    assert holder.model() is None
    clock.now += RETRY_FIRST_S
    assert holder.refresh() is True
    assert holder.model().version == 1 and holder.failures == {}
