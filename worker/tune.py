"""``inferq tune PATH``: measure a model's calls and the queue on this machine, and propose its settings.

PATH is a model's directory as the repository holds it (versions inside; the newest is measured).
It measures the model call alone by batch size, once per TensorFlow thread setting, each in a
process of its own (``worker.call_costs``); the queue's cost per batch and per item on a real Redis
(an embedded one, ``worker.queue_costs``); and proposes (``worker.batch_proposal``)
``max_batch_size`` and ``max_batch_wait_ms``, which go in PATH/config.json with ``--write`` (other
keys kept), and the workers per host and their thread counts, which are the host's environment
(WORKERS, TF_INTRA_OP_THREADS, TF_INTER_OP_THREADS) and are printed as lines to set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from inferq import model_config, repository
from worker import batch_proposal, call_costs, queue_costs
from worker.batch_proposal import Proposal, QueueOverhead, ThreadSetting

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUICK_BATCHES = (1, 8, 64)
QUICK_SECONDS_PER_POINT = 0.1
QUICK_QUEUE_SIZES, QUICK_QUEUE_ROUNDS = (1, 16), 8


@dataclasses.dataclass(frozen=True)
class Measured:
    #: ms a call, by thread setting and batch size.
    curves: dict[ThreadSetting, dict[int, float]]
    queue: queue_costs.QueueCost


@dataclasses.dataclass(frozen=True)
class Plan:
    batches: tuple[int, ...]
    threads: tuple[ThreadSetting, ...]
    seconds_per_point: float
    queue_sizes: tuple[int, ...]
    queue_rounds: int

    @classmethod
    def for_host(cls, cores: int, *, quick: bool, batches: Sequence[int] | None = None,
                 intra: Sequence[int] | None = None) -> Plan:
        counts = tuple(intra) if intra else ((1,) if quick or cores == 1 else (1, cores))
        return cls(tuple(sorted(set(batches or (QUICK_BATCHES if quick else BATCHES)))),
                   tuple((count, 1) for count in counts),
                   QUICK_SECONDS_PER_POINT if quick else call_costs.SECONDS_PER_POINT,
                   QUICK_QUEUE_SIZES if quick else queue_costs.SIZES,
                   QUICK_QUEUE_ROUNDS if quick else queue_costs.ROUNDS)

    @property
    def steps(self) -> int:
        return len(self.batches) * len(self.threads) + len(self.queue_sizes) * self.queue_rounds


def measure(model_dir: str | Path, plan: Plan, on_step: Callable[[], None] = lambda: None) -> Measured:
    """The call curves and the queue's costs of the newest version in ``model_dir``."""
    points = call_costs.measure_threads(model_dir, plan.batches, plan.threads,
                                        seconds_per_point=plan.seconds_per_point, on_point=lambda _point: on_step())
    curves: dict[ThreadSetting, dict[int, float]] = {}
    for point in points:
        curves.setdefault((point.threads, point.inter_op_threads), {})[point.batch] = point.ms_per_call
    return Measured(curves, _queue_cost(model_dir, plan, on_step))


def _queue_cost(model_dir: str | Path, plan: Plan, on_step: Callable[[], None]) -> queue_costs.QueueCost:
    from launcher.redis_server import embedded_redis
    from worker.model import load_version

    version = repository.newest_version(model_dir)
    assert version is not None
    model = load_version(model_dir, Path(model_dir).name, version, config=model_config.load(model_dir),
                         intra_op_threads=1, inter_op_threads=1)
    with tempfile.TemporaryDirectory(prefix="inferq-tune-") as work, embedded_redis(Path(work)) as url:
        return queue_costs.measure(model, url, sizes=plan.queue_sizes, rounds=plan.queue_rounds, on_round=on_step)


def propose(measured: Measured, *, cores: int, api_cores: int, p99_ms: float | None = None,
            rate: float | None = None) -> Proposal:
    overhead = QueueOverhead(measured.queue.per_batch_ms, measured.queue.per_item_ms)
    if p99_ms is None:
        return batch_proposal.for_throughput(measured.curves, overhead, cores=cores, api_cores=api_cores)
    assert rate is not None
    return batch_proposal.for_p99(measured.curves, overhead, p99_ms=p99_ms, rate=rate, cores=cores,
                                  api_cores=api_cores)


def write_config(model_dir: str | Path, settings: dict[str, object]) -> Path:
    """PATH/config.json with ``settings`` in it and every other key kept as it was; written whole
    (a temporary file renamed over it), and checked as the worker reads it before it replaces it."""
    path = Path(model_dir) / model_config.CONFIG_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if not isinstance(data, dict):
        raise model_config.ConfigError(f"{path}: must be a JSON object")
    data.update(settings)
    model_config.ModelConfig.from_json(data, str(path))
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)
    return path


def curve_table(measured: Measured, proposal: Proposal, queue: QueueOverhead, *, cores: int, api_cores: int) -> str:
    lines = [f"{'threads':>8}{'batch':>7}{'call ms':>10}{'items/s':>11}{'+queue ms':>11}{'workers':>9}"
             f"{'host items/s':>14}"]
    for candidate in batch_proposal.candidates(measured.curves, queue, cores=cores, api_cores=api_cores):
        chosen = (candidate.batch == proposal.max_batch_size
                  and candidate.threads == (proposal.intra_op_threads, proposal.inter_op_threads))
        host = (f"{candidate.workers:>9}{candidate.host_rate:>14,.0f}" if candidate.fits_host
                else f"{'-':>9}{'(API cores)':>14}")
        lines.append(f"{call_costs.threads_label(candidate.threads[0]):>8}{candidate.batch:>7}"
                     f"{candidate.call_ms:>10.3f}{candidate.batch * 1000 / candidate.call_ms:>11,.0f}"
                     f"{candidate.service_ms:>11.3f}{host}{'  <- proposed' if chosen else ''}")
    return "\n".join(lines)


def report(model_dir: str | Path, measured: Measured, proposal: Proposal, *, cores: int, api_cores: int) -> str:
    queue = measured.queue
    overhead = QueueOverhead(queue.per_batch_ms, queue.per_item_ms)
    lines = [f"model call alone ({model_dir}, newest version), and with the queue's cost of a batch:",
             curve_table(measured, proposal, overhead, cores=cores, api_cores=api_cores),
             f"queue (real Redis, the worker's batch path): {queue.per_batch_ms:.3f} ms a batch + "
             f"{queue.per_item_ms:.4f} ms an item in the worker; admission {queue.admit_per_item_ms:.3f} ms a job "
             "in the API",
             "why:", *(f"  {reason}" for reason in proposal.reasons)]
    if not proposal.fits:
        lines.append("the target is NOT met by any measured setting: the nearest is proposed")
    lines += [f"proposed config.json ({Path(model_dir) / model_config.CONFIG_FILE}): "
              + json.dumps(proposal.config()),
              "proposed per-host environment (set where the workers start):",
              *(f"  {name}={value}" for name, value in proposal.env().items())]
    return "\n".join(lines)


def parser(prog: str = "inferq tune") -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("path", metavar="PATH", help="a model's directory (versions inside)")
    result.add_argument("--objective", choices=("throughput",), default="throughput",
                        help="the most items a second (default, unless --p99-ms is given)")
    result.add_argument("--p99-ms", type=float, metavar="N", help="instead: the largest batch whose p99 fits N ms "
                        "at --rate")
    result.add_argument("--rate", type=float, metavar="R", help="items a second the host takes (with --p99-ms)")
    result.add_argument("--write", action="store_true", help="write max_batch_size and max_batch_wait_ms into "
                        "PATH/config.json, keeping its other keys")
    result.add_argument("--quick", action="store_true", help="fewer, shorter points (seconds, not a minute)")
    result.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="cores of the host the model will be served on (default: this one's, %(default)s)")
    result.add_argument("--api-cores", type=int, help="cores left to the API on that host (default: 1 where "
                        "there are several, else 0)")
    result.add_argument("--batches", type=int, nargs="+", metavar="B", help="batch sizes to measure")
    result.add_argument("--threads", type=int, nargs="+", metavar="T",
                        help="intra-op thread counts to measure (default: 1 and the cores; --quick: 1)")
    return result


def main(argv: list[str] | None = None, prog: str = "inferq tune") -> int:
    args = parser(prog).parse_args(argv)
    if (args.p99_ms is None) != (args.rate is None):
        print(f"{prog}: --p99-ms and --rate go together", file=sys.stderr)
        return 2
    if repository.newest_version(args.path) is None:
        print(f"{prog}: no model version in {args.path} (a model's directory holds versions 1/, 2/, ...)",
              file=sys.stderr)
        return 2
    try:
        model_config.load(args.path)
    except model_config.ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    # TensorFlow's start-up notices and the loader's deprecation warning, in this process (the one
    # measuring the queue): not what a user of this command needs to read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    cores = max(1, args.cores)
    api_cores = args.api_cores if args.api_cores is not None else (1 if cores > 1 else 0)
    plan = Plan.for_host(cores, quick=args.quick, batches=args.batches, intra=args.threads)

    from tqdm import tqdm

    with tqdm(total=plan.steps, desc="measuring", unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            measured = measure(args.path, plan, bar.update)
        except (RuntimeError, ValueError, OSError) as exc:
            bar.close()
            print(f"{prog}: {exc}", file=sys.stderr)
            return 1
    try:
        proposal = propose(measured, cores=cores, api_cores=api_cores, p99_ms=args.p99_ms, rate=args.rate)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(report(args.path, measured, proposal, cores=cores, api_cores=api_cores))
    if args.write:
        print(f"wrote {write_config(args.path, proposal.config())}")
    return 0 if proposal.fits else 1


if __name__ == "__main__":
    sys.exit(main(prog="python -m worker.tune"))
