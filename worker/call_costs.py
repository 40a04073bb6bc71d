"""What a model call costs by batch size, made as a worker makes it (``worker.model``), the model alone.

TensorFlow fixes its thread pools when a process first uses them, so each intra-op/inter-op thread
count is measured in a process of its own (``python -m worker.call_costs``, started by
:func:`measure_threads`), which loads the model with those counts, as a worker started with
TF_INTRA_OP_THREADS / TF_INTER_OP_THREADS does, and writes a JSON line a point.

The inputs are drawn from the served signature (any model, not MNIST only): numbers 0..255 of each
input's type, one per item, sizes a signature leaves open set to 1; empty strings for string inputs.
What the values are does not change what a call of a dense model costs.

A point is its calls' lower quartile: the call's own cost, with as little as can be of the time
other processes held the cores (a busy host's runs vary by several times; their median follows the
load, not the model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

#: Each point's calls are repeated for at least this long, and at least MIN_CALLS times.
SECONDS_PER_POINT = 0.5
MIN_CALLS = 5


@dataclasses.dataclass(frozen=True)
class CallPoint:
    #: TensorFlow's intra-op threads: a count, or 0 for one per core.
    threads: int
    batch: int
    ms_per_call: float
    images_per_s: float
    #: TensorFlow's inter-op threads the call ran with.
    inter_op_threads: int = 1


def threads_label(threads: int) -> str:
    return str(threads) if threads else f"{os.cpu_count()} (all)"


def batch_inputs(spec, batch: int, random_seed: int = 0) -> dict:
    """Inputs of ``batch`` items for a model of ``spec`` (its :class:`~inferq.model_spec.ModelSpec`)."""
    import numpy as np

    from inferq.model_spec import ANY

    rng = np.random.default_rng(random_seed)
    inputs = {}
    for tensor in spec.inputs:
        shape = (batch, *(1 if size == ANY else size for size in tensor.shape[1:]))
        if tensor.dtype == "string":
            inputs[tensor.name] = np.full(shape, b"", object)
        else:
            inputs[tensor.name] = rng.integers(0, 256, shape).astype(np.dtype(tensor.dtype))
    return inputs


def measure(model_dir: str | Path, batches: Sequence[int], *, intra_op_threads: int, inter_op_threads: int = 1,
            seconds_per_point: float = SECONDS_PER_POINT) -> Iterator[CallPoint]:
    """The time of a call of each batch size (its lower quartile), in this process, the model loaded with these
    thread counts (the first load in a process fixes TensorFlow's pools: see the module's doc)."""
    from inferq import model_config, repository
    from worker.model import load_version

    version = repository.newest_version(model_dir)
    if version is None:
        raise ValueError(f"no model in {model_dir}")
    # Its config.json, as the worker reads it (the signature served is its).
    model = load_version(model_dir, Path(model_dir).name, version, config=model_config.load(model_dir),
                         intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
    largest = batch_inputs(model.spec, max(batches))
    for batch in batches:
        inputs = {name: array[:batch] for name, array in largest.items()}
        model.predict(inputs)  # the first call of a shape sets up its kernels
        times = []
        deadline = time.perf_counter() + seconds_per_point
        while len(times) < MIN_CALLS or time.perf_counter() < deadline:
            started = time.perf_counter()
            model.predict(inputs)
            times.append(time.perf_counter() - started)
        seconds = statistics.quantiles(times, n=4)[0]
        yield CallPoint(intra_op_threads, batch, seconds * 1000, batch / seconds, inter_op_threads)


def measure_threads(model_dir: str | Path, batches: Sequence[int], threads: Sequence[tuple[int, int]], *,
                    seconds_per_point: float = SECONDS_PER_POINT,
                    on_point: Callable[[CallPoint], None] = lambda point: None) -> list[CallPoint]:
    """:func:`measure` for each (intra-op, inter-op) pair in ``threads``, each in a fresh process."""
    points: list[CallPoint] = []
    for intra, inter in threads:
        command = [sys.executable, "-m", "worker.call_costs", str(model_dir), "--intra", str(intra),
                   "--inter", str(inter), "--seconds", str(seconds_per_point), "--batches", *map(str, batches)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as child:
            assert child.stdout is not None and child.stderr is not None
            for line in child.stdout:
                point = CallPoint(**json.loads(line))
                points.append(point)
                on_point(point)
            errors = child.stderr.read()
        if child.returncode != 0:
            raise RuntimeError(f"measuring {model_dir} with {intra} intra-op threads failed "
                               f"(status {child.returncode}): {errors.strip()[-600:]}")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.call_costs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--intra", type=int, default=1)
    parser.add_argument("--inter", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=SECONDS_PER_POINT)
    parser.add_argument("--batches", type=int, nargs="+", required=True)
    args = parser.parse_args(argv)
    for point in measure(args.model_dir, args.batches, intra_op_threads=args.intra, inter_op_threads=args.inter,
                         seconds_per_point=args.seconds):
        print(json.dumps(dataclasses.asdict(point)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
