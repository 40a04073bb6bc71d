"""The peer users would pick instead: NVIDIA PyTriton serving the same SavedModel over KServe v2.

Triton's C++ HTTP and gRPC front ends and its dynamic batcher, in front of a Python callable that
runs the model's ``serving_default`` signature in one TensorFlow session call a batch (as inferq's
worker does). Served as ``mnist`` with the signature's tensors, so that the same KServe v2 request
bodies ``bench.tensors`` sends to inferq work here; batches of up to ``--max-batch-size`` items,
waiting at most ``--max-queue-delay-ms`` for more: inferq's MAX_BATCH_SIZE and MAX_BATCH_WAIT_MS.

It runs in a virtual environment of its own (``bench.peers`` builds it from
``bench/pytriton-requirements.txt``): PyTriton 0.7 needs numpy<2, the project's venv has numpy 2.
So it imports nothing of inferq's: ``python bench/pytriton_server.py --model-dir DIR --http-port N``.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import numpy as np
import tensorflow as tf
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

SIGNATURE = "serving_default"
#: The meta graph tags tried, as inferq's worker tries them (worker/signatures.py).
TAGS = ("serve", "model")


def newest_version(model_dir: Path) -> Path:
    versions = [path for path in model_dir.iterdir() if path.name.isdigit() and (path / "saved_model.pb").is_file()]
    if not versions:
        raise SystemExit(f"no model version under {model_dir}")
    return max(versions, key=lambda path: int(path.name))


def load(version_dir: Path):
    """The signature's runner (inputs by name -> outputs by name) and its tensors, batch dimension dropped."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph, config=tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))
    with graph.as_default():
        for tag in TAGS:
            try:
                meta_graph = tf.compat.v1.saved_model.loader.load(session, [tag], str(version_dir))
                break
            except RuntimeError:
                continue
        else:
            raise SystemExit(f"{version_dir}: no meta graph tagged {' or '.join(TAGS)}")
    signature = meta_graph.signature_def[SIGNATURE]
    input_names, output_names = sorted(signature.inputs), sorted(signature.outputs)
    run = session.make_callable([signature.outputs[name].name for name in output_names],
                                feed_list=[signature.inputs[name].name for name in input_names])

    def spec(name: str, info) -> Tensor:
        tensor = graph.get_tensor_by_name(info.name)
        # Triton wants dims for every tensor: one of a number an item (labels) gets a dimension of 1.
        shape = tuple(-1 if size is None else size for size in tensor.shape.as_list()[1:]) or (1,)
        return Tensor(name=name, dtype=tensor.dtype.as_numpy_dtype, shape=shape)

    inputs = [spec(name, signature.inputs[name]) for name in input_names]
    outputs = [spec(name, signature.outputs[name]) for name in output_names]

    def infer(**tensors: np.ndarray) -> dict[str, np.ndarray]:
        values = run(*(tensors[name] for name in input_names))
        return {name: value.reshape(len(value), -1) if value.ndim == 1 else value
                for name, value in zip(output_names, values, strict=True)}

    return infer, inputs, outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a directory of versions; the newest is served")
    parser.add_argument("--name", default="mnist")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    parser.add_argument("--log-file", type=Path, help="where Triton's server logs (default: this process's output)")
    args = parser.parse_args(argv)

    infer, inputs, outputs = load(newest_version(args.model_dir))
    config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, grpc_address="127.0.0.1",
                          grpc_port=args.grpc_port, metrics_port=args.metrics_port, log_verbose=0,
                          log_file=args.log_file)
    with Triton(config=config) as triton:
        triton.bind(model_name=args.name, infer_func=batch(infer), inputs=inputs, outputs=outputs,
                    config=ModelConfig(max_batch_size=args.max_batch_size, batcher=DynamicBatcher(
                        max_queue_delay_microseconds=int(args.max_queue_delay_ms * 1000))), strict=False)
        # SIGTERM (bench.systems stops its children so) ends serve() as Ctrl-C does: Triton stops cleanly.
        signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
        print("pytriton: serving", flush=True)
        triton.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
