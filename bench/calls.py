"""The model call alone, as a worker makes it (``worker.model``): time per call at several batch sizes,
with one TensorFlow thread (the workers' default) and with one per core.

It tells a model's regime without the service around it: how much a call of 64 images costs against
a call of one (what batching can buy), and what a second thread buys against a second worker.

    python -m bench.calls models/mnist      # the newest version of a model directory
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from inferq import mnist_contract, model_config, repository

#: Calls are repeated for at least this long, and at least MIN_CALLS times, per point.
SECONDS_PER_POINT = 0.5
MIN_CALLS = 5


@dataclasses.dataclass
class CallPoint:
    #: TensorFlow's intra-op threads: 1, or 0 for one per core.
    threads: int
    batch: int
    ms_per_call: float
    images_per_s: float


def measure(model_dir: str | Path, batches: list[int], threads: list[int]) -> list[CallPoint]:
    """Median time per call of each batch size in ``batches``, for each intra-op thread count in ``threads``."""
    from worker.model import load_version

    # What the pixels are does not change what a call of these models costs.
    images = np.random.default_rng(0).integers(0, 256, (max(batches), mnist_contract.N_INPUT), np.uint8)

    version = repository.newest_version(model_dir)
    if version is None:
        raise ValueError(f"no model in {model_dir}")
    points = []
    config = model_config.load(model_dir)  # its config.json, if it has one, as the worker reads it
    for count in threads:
        model = load_version(model_dir, Path(model_dir).name, version, config=config, intra_op_threads=count,
                             inter_op_threads=1)
        for batch in batches:
            inputs = {mnist_contract.SIGNATURE_INPUT: images[:batch]}
            model.predict(inputs)  # the first call of a shape sets up its kernels
            times = []
            deadline = time.perf_counter() + SECONDS_PER_POINT
            while len(times) < MIN_CALLS or time.perf_counter() < deadline:
                started = time.perf_counter()
                model.predict(inputs)
                times.append(time.perf_counter() - started)
            seconds = statistics.median(times)
            points.append(CallPoint(count, batch, seconds * 1000, batch / seconds))
    return points


def threads_label(threads: int) -> str:
    return str(threads) if threads else f"{os.cpu_count()} (all)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="a directory of versions (the newest is measured)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    args = parser.parse_args(argv)
    if repository.newest_version(args.model_dir) is None:
        print(f"bench.calls: no model in {args.model_dir}", file=sys.stderr)
        return 1
    print(f"{'threads':>8}{'batch':>7}{'ms/call':>10}{'images/s':>11}")
    for point in measure(args.model_dir, args.batches, [1, 0]):
        print(f"{threads_label(point.threads):>8}{point.batch:>7}{point.ms_per_call:>10.3f}{point.images_per_s:>11.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
