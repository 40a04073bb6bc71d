"""A benchmark run's results: a table on stdout, a JSON file, a plot, and a summary line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.load import SyncPoint


def table(sweeps: dict[str, list[SyncPoint]], extras: list[str]) -> str:
    lines = [f"{'system':<16}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'wrong':>7}"
             f"{'mean batch':>12}"]
    for name, points in sweeps.items():
        for point in points:
            batch = f"{point.mean_batch:.1f}" if point.mean_batch is not None else "-"
            lines.append(f"{name:<16}{point.concurrency:>8}{point.rps:>10.0f}{point.p50_ms:>9.2f}{point.p99_ms:>9.1f}"
                         f"{point.errors:>8}{point.wrong_labels:>7}{batch:>12}")
    return "\n".join(lines + extras)


def plot(sweeps: dict[str, list[SyncPoint]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (throughput, tail) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for name, points in sweeps.items():
        clients = [p.concurrency for p in points]
        throughput.plot(clients, [p.rps for p in points], marker="o", label=name)
        tail.plot(clients, [p.p99_ms for p in points], marker="o", label=name)
    for axis, title, unit in ((throughput, "Throughput", "requests/s"), (tail, "Tail latency", "p99 ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    tail.set_yscale("log")
    figure.suptitle("POST /recognize, one MNIST PNG per request")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=lambda value: dataclasses.asdict(value)))
