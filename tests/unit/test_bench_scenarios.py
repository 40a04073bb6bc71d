"""The benchmark reads the mean batch of the model it serves from the API's /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from bench.scenarios import batch_totals
from inferq.metric_snapshots import merge
from worker.metrics import WorkerMetrics


class Merged:
    def __init__(self, snapshots: list[list[dict]]) -> None:
        self._snapshots = snapshots

    def collect(self):
        yield from merge(self._snapshots)


def test_the_served_models_batches_are_summed_over_workers_and_versions():
    first, second = WorkerMetrics(), WorkerMetrics()
    first.record_call("mnist", 1, 64, 0.001)
    first.record_call("mnist", 2, 16, 0.001)
    second.record_call("mnist", 2, 8, 0.001)
    second.record_call("mnist_cnn", 1, 100, 0.001)
    registry = CollectorRegistry()
    registry.register(Merged([first.snapshot(), second.snapshot()]))
    text = generate_latest(registry).decode()
    assert batch_totals(text) == (88.0, 3.0)
    assert batch_totals(text, "mnist_cnn") == (100.0, 1.0)
    assert batch_totals("") == (0.0, 0.0)
