"""The model call alone, as a worker makes it (``worker.call_costs``): time per call at several batch
sizes, with one TensorFlow thread (the workers' default) and with one per core, each in a process
of its own.

It tells a model's regime without the service around it: how much a call of 64 images costs against
a call of one (what batching can buy), and what a second thread buys against a second worker.
``inferq tune`` measures the same, and proposes settings from it.

    python -m bench.calls models/mnist      # the newest version of a model directory
"""

from __future__ import annotations

import sys
from pathlib import Path

from inferq import repository
from worker.call_costs import CallPoint, measure_threads, threads_label

__all__ = ["CallPoint", "measure", "threads_label", "main"]


def measure(model_dir: str | Path, batches: list[int], threads: list[int]) -> list[CallPoint]:
    """Time per call (lower quartile) of each batch size in ``batches``, for each intra-op thread count in
    ``threads`` (one inter-op thread)."""
    return measure_threads(model_dir, batches, [(count, 1) for count in threads])


def main(argv: list[str] | None = None) -> int:
    from bench import opening

    parser = opening.parser("bench.calls", __doc__)
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
