"""A benchmark run's results: a report per model on stdout, a JSON file, a plot per model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from bench.calls import threads_label
from bench.load import SyncPoint
from bench.mixed import table as mixed_table
from bench.scenarios import ModelRun
from bench.tensors import table as tensor_table
from bench.tuned import table as tuned_table


def model_report(run: ModelRun) -> str:
    """The model, its sync table, bulk, drain, what batching bought, and its model calls."""
    model = run.model
    lines = [f"== {model.name} ({model.regime}): {model.origin}", table(run.sweeps)]
    lines += [
        f"bulk ({result.upload}): {result.jobs} jobs x 256 images in {result.seconds:.2f} s = "
        f"{result.images_per_s:.0f} images/s ({result.wrong_labels} wrong labels)"
        for result in run.bulk
    ]
    client = run.client
    lines.append(f"client (inferq score): {client.images} images in {client.seconds:.2f} s = "
                 f"{client.images_per_s:.0f} images/s beside bulk (idx) {run.bulk[0].images_per_s:.0f} images/s: "
                 f"{client.images_per_s / run.bulk[0].images_per_s:.0%} ({client.wrong_labels} wrong labels, "
                 f"{client.failed} failed)")
    drained = run.drain
    lines.append(f"drain: {drained.messages} one-image messages in {drained.seconds:.2f} s = "
                 f"{drained.messages_per_s:.0f} messages/s, mean batch {drained.mean_batch:.1f}")
    lines.append(f"HTTP server: {run.servers[0]} for inferq and the reference; <name>@<server> under <server>")
    summary = run.summary()
    lines.append(f"batching buys {summary['batching_gain_c64']:.2f}x at 64 clients ({summary['sync_rps_c64']:.0f} "
                 f"against {summary['nobatch_rps_c64']:.0f} req/s with MAX_BATCH_SIZE=1)")
    lines.append(f"{'model call':<16}{'threads':>8}{'batch':>7}{'ms/call':>10}{'images/s':>11}")
    lines += [f"{'':<16}{threads_label(point.threads):>8}{point.batch:>7}{point.ms_per_call:>10.3f}"
              f"{point.images_per_s:>11.0f}" for point in run.calls]
    if run.mixed is not None:
        lines += ["Interactive requests beside a full bulk queue (bench.mixed):", mixed_table(run.mixed)]
    if run.tensors:
        lines += ["The tensor path, one FP32 image a request, KServe v2 over HTTP and gRPC (bench.tensors), on inferq "
                  "and, where measured, on PyTriton (bench.peers):",
                  tensor_table(run.tensors)]
    if run.tuned is not None:
        lines.append(tuned_table(run.tuned))
    return "\n".join(lines)


def table(sweeps: dict[str, list[SyncPoint]]) -> str:
    lines = [f"{'system':<16}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'wrong':>7}"
             f"{'mean batch':>12}"]
    for name, points in sweeps.items():
        for point in points:
            batch = f"{point.mean_batch:.1f}" if point.mean_batch is not None else "-"
            lines.append(f"{name:<16}{point.concurrency:>8}{point.rps:>10.0f}{point.p50_ms:>9.2f}{point.p99_ms:>9.1f}"
                         f"{point.errors:>8}{point.wrong_labels:>7}{batch:>12}")
    return "\n".join(lines)


def plot(run: ModelRun, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (throughput, tail) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for name, points in run.sweeps.items():
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
    figure.suptitle(f"POST /recognize, one MNIST PNG per request: {run.model.name} ({run.model.regime})")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def save(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=lambda value: dataclasses.asdict(value)))
