"""Prometheus metrics as JSON, so workers can carry theirs in heartbeats and the API can sum them.

prometheus_client's multiprocess mode shares metrics between processes through files on one host;
workers run on many hosts, and Redis is what they share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric


def snapshot(registry: CollectorRegistry) -> list[dict]:
    return [
        {
            "name": family.name,
            "documentation": family.documentation,
            "type": family.type,
            # A creation time is per process: neither summable nor meaningful for a sum.
            "samples": [[s.name, s.labels, s.value] for s in family.samples if not s.name.endswith("_created")],
        }
        for family in registry.collect()
    ]


def merge(snapshots: Iterable[list[dict]]) -> list[Metric]:
    """One family per metric name, each sample summed across the snapshots."""
    families: dict[str, Metric] = {}
    totals: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
    for families_of_one in snapshots:
        for family in families_of_one:
            name = family["name"]
            families.setdefault(name, Metric(name, family["documentation"], family["type"]))
            for sample_name, labels, value in family["samples"]:
                totals[name][(sample_name, tuple(sorted(labels.items())))] += value
    for name, family in families.items():
        for (sample_name, labels), value in totals[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())
