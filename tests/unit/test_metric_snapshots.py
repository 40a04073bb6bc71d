from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from inferq.metric_snapshots import merge, snapshot


def registry_with(batches: list[int], messages: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    histogram = Histogram("batch_images", "Images per batch.", buckets=(1, 8, 64), registry=registry)
    for size in batches:
        histogram.observe(size)
    Counter("messages", "Messages.", registry=registry).inc(messages)
    return registry


def test_snapshots_of_several_processes_sum_into_one_family_each():
    merged = CollectorRegistry()

    class Merged:
        def collect(self):
            return merge([snapshot(registry_with([1, 60], 2)), snapshot(registry_with([8], 5))])

    merged.register(Merged())
    text = generate_latest(merged).decode()
    assert 'batch_images_bucket{le="1.0"} 1.0' in text
    assert 'batch_images_bucket{le="8.0"} 2.0' in text
    assert 'batch_images_bucket{le="64.0"} 3.0' in text
    assert "batch_images_sum 69.0" in text
    assert "messages_total 7.0" in text
    assert "_created" not in text
