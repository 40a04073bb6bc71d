"""The tensor path over both of KServe v2's carriers: binary tensors over HTTP/1.1 (``POST
/v2/models/<name>/infer`` with Triton's binary data, what tritonclient.http sends) against gRPC
(``ModelInfer`` with ``raw_input_contents``, what tritonclient.grpc sends), same model, same run.

Load comes from h2load (nghttp2's, a Debian package), C like wrk and as cheap, the one load
generator for both so that what differs is the front end: ``--h1`` for HTTP, h2c for gRPC. Each of
its clients is one connection with one request in flight, sending the same one-image request
again as soon as it is answered. h2load sees HTTP statuses, and a gRPC refusal is an HTTP 200 whose
status is in its trailers: a gRPC call is counted answered by the bytes that came back, each answer
being the same length (``ANSWER``), checked with tritonclient before and after. ``python -m
bench.tensors`` runs it alone; ``make bench`` as one of its scenarios (``bench.scenarios``).
"""

from __future__ import annotations

import dataclasses
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.cpu import CpuMeter
from bench.load import SyncPoint

HTTP = "kserve v2 http"
GRPC = "kserve v2 grpc"
#: The same two carriers, on the peer (``bench.systems.pytriton_reference``).
PEER_HTTP = "pytriton http"
PEER_GRPC = "pytriton grpc"
METHOD = "/inference.GRPCInferenceService/ModelInfer"
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclasses.dataclass(frozen=True)
class Bodies:
    """One image's request, as each protocol carries it, and the label it should get."""

    pixels: np.ndarray
    http_body: Path
    http_header_length: int
    grpc_body: Path
    label: int


def bodies(image: np.ndarray, label: int, model: str, work: Path) -> Bodies:
    from tritonclient.grpc import service_pb2
    from tritonclient.http import InferenceServerClient, InferInput

    pixels = image.reshape(1, 784).astype(np.float32)
    tensor = InferInput("inputdata", [1, 784], "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=True)
    http_body, length = InferenceServerClient.generate_request_body([tensor])
    request = service_pb2.ModelInferRequest(model_name=model, inputs=[service_pb2.ModelInferRequest.InferInputTensor(
        name="inputdata", datatype="FP32", shape=[1, 784])], raw_input_contents=[pixels.tobytes()])
    message = request.SerializeToString()
    work.mkdir(parents=True, exist_ok=True)
    (work / "v2.bin").write_bytes(http_body)
    # gRPC's framing: not compressed (0), the message's length (4 bytes, big-endian), the message.
    (work / "grpc.bin").write_bytes(b"\0" + struct.pack(">I", len(message)) + message)
    return Bodies(pixels, work / "v2.bin", length, work / "grpc.bin", label)


def answer_bytes(address: str, model: str, body: Bodies) -> int:
    """The framed size of one gRPC answer, asked for with tritonclient, which checks it."""
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(address)
    try:
        tensor = triton_grpc.InferInput("inputdata", [1, 784], "FP32")
        tensor.set_data_from_numpy(body.pixels)
        result = client.infer(model, [tensor])
    finally:
        client.close()
    # Flat: PyTriton answers a number an item as [items, 1] (Triton wants dims for every tensor).
    labels = result.as_numpy("labels").ravel().tolist()
    if labels != [body.label]:
        raise RuntimeError(f"gRPC answered {labels} for an image of {body.label}")
    return 5 + result.get_response().ByteSize()


def h2load(url: str, concurrency: int, seconds: float, data: Path, headers: list[str], *, h1: bool,
           log: Path) -> tuple[list[tuple[int, float]], int, float]:
    """(status, ms) of every request h2load finished, the response body bytes, the seconds it ran."""
    log.unlink(missing_ok=True)  # h2load appends to its log
    command = ["h2load", "--clients", str(concurrency), "--threads", str(min(concurrency, 2)),
               "--max-concurrent-streams", "1", "--duration", f"{seconds:g}", "--data", str(data),
               "--log-file", str(log), *(part for header in headers for part in ("--header", header)),
               *(["--h1"] if h1 else []), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finished = re.search(r"finished in ([\d.]+)(m?s)", output)
    ran = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1) if finished else seconds
    # "traffic: 58.72KB (60126) total, 1.16KB (1185) headers (space savings 95.76%), 38.41KB (39330) data"
    traffic = re.search(r"^traffic: .*\((\d+)\) data$", output, re.MULTILINE)
    if traffic is None:
        raise RuntimeError(f"h2load printed no traffic line:\n{output}")
    data_bytes = int(traffic.group(1))
    rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    return [(int(status), int(micros) / 1000) for _, status, micros, *_ in rows], data_bytes, ran


def _point(concurrency: int, done: list[tuple[int, float]], answered: int, seconds: float) -> SyncPoint:
    latencies = np.array([ms for _, ms in done]) if done else np.array([0.0])
    return SyncPoint(concurrency=concurrency, answered=answered, rps=answered / seconds,
                     p50_ms=float(np.percentile(latencies, 50)), p99_ms=float(np.percentile(latencies, 99)),
                     errors=len(done) - answered, wrong_labels=0)


@dataclasses.dataclass(frozen=True)
class Carrier:
    """One way of sending the same tensor request: h2load's URL, body and headers, HTTP/1.1 or h2c."""

    name: str
    url: str
    data: Path
    headers: list[str]
    h1: bool


def sweep_carriers(carriers: list[Carrier], clients: list[int], seconds: float, work: Path, roles=None, *,
                   grpc_answer_bytes: int) -> dict[str, list[SyncPoint]]:
    """Each carrier at each concurrency, alternating (all of them at 1, then at the next), so that a
    machine that slows down slows each. An HTTP answer counts by its status; a gRPC one by the bytes
    that came back (``grpc_answer_bytes`` each: h2load cannot read gRPC's status). ``roles``
    (``bench.cpu``): the front ends' CPU per request too."""
    for carrier in carriers:  # warm up: connections, the first model calls
        h2load(carrier.url, 4, 1, carrier.data, carrier.headers, h1=carrier.h1, log=work / "warm.log")
    results: dict[str, list[SyncPoint]] = {carrier.name: [] for carrier in carriers}
    for concurrency in clients:
        for carrier in carriers:
            with CpuMeter(roles or (lambda: {})) as meter:
                done, data_bytes, ran = h2load(carrier.url, concurrency, seconds, carrier.data, carrier.headers,
                                               h1=carrier.h1,
                                               log=work / f"{carrier.name.replace(' ', '-')}-{concurrency}.log")
            answered = (sum(status == 200 for status, _ in done) if carrier.h1
                        else min(len(done), data_bytes // grpc_answer_bytes))
            point = _point(concurrency, done, answered, ran)
            # Cores the front end took, over its answers a second: CPU milliseconds an answer.
            cores = meter.cores.get("api" if carrier.h1 else "grpc")
            if cores is not None and point.rps:
                point.cpu_ms_per_request = round(1000 * cores / point.rps, 3)
            results[carrier.name].append(point)
    return results


#: What gRPC's framing needs of h2load: no body type of its own, trailers for the status.
GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"]


def sweep(http_base: str, grpc_address: str, model: str, body: Bodies, clients: list[int], seconds: float,
          work: Path, roles=None, names: tuple[str, str] = (HTTP, GRPC)) -> dict[str, list[SyncPoint]]:
    """KServe v2's two carriers (:func:`sweep_carriers`); ``names``: the results' names for the HTTP
    and the gRPC carrier."""
    answer = answer_bytes(grpc_address, model, body)
    http_headers = [f"{HEADER_LENGTH}: {body.http_header_length}", "content-type: application/octet-stream"]
    carriers = [Carrier(names[0], f"{http_base}/v2/models/{model}/infer", body.http_body, http_headers, True),
                Carrier(names[1], f"http://{grpc_address}{METHOD}", body.grpc_body, GRPC_HEADERS, False)]
    results = sweep_carriers(carriers, clients, seconds, work, roles, grpc_answer_bytes=answer)
    answer_bytes(grpc_address, model, body)  # and still right after the load
    return results


def table(results: dict[str, list[SyncPoint]]) -> str:
    lines = [f"{'tensor path':<16}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
             f"{'front-end CPU ms/req':>22}"]
    for name, points in results.items():
        for point in points:
            cpu = point.cpu_ms_per_request
            lines.append(f"{name:<16}{point.concurrency:>8}{point.rps:>10.0f}{point.p50_ms:>9.2f}{point.p99_ms:>9.1f}"
                         f"{point.errors:>8}{'-' if cpu is None else f'{cpu:.3f}':>22}")
    return "\n".join(lines)


def standalone(argv: list[str] | None, *, program: str, description: str, clients: str,
               make_bodies: Callable[[np.ndarray, int, str, Path], object],
               run_sweep: Callable[..., dict[str, list[SyncPoint]]]) -> int:
    """A tensor-path benchmark run alone: the model ``--model`` names served by inferq with its gRPC
    front end, ``run_sweep(http_base, grpc_address, model, body, clients, seconds, work, roles)`` over
    the bodies ``make_bodies`` made of the first MNIST test digit, and the table printed."""
    from bench import opening, systems

    parser = opening.parser(program, description)
    parser.add_argument("--model", help="as `python -m bench --model` (default: the seed MLP)")
    parser.add_argument("--clients", default=clients)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    setup = opening.setup(program)
    (model,) = setup.models(args.model, quick=True)
    body = make_bodies(setup.images[0], int(setup.labels[0]), systems.SERVED_MODEL, setup.work)
    with opening.service(setup.work, model.model_dir, grpc=True) as (_, running):
        results = run_sweep(running.base_url, running.grpc_address, systems.SERVED_MODEL, body,
                            [int(n) for n in args.clients.split(",")], args.seconds, setup.work, running.pids)
    print(f"== {model.name}: {model.origin}")
    print(table(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    return standalone(argv, program="bench.tensors", description=__doc__.splitlines()[0], clients="1,64",
                      make_bodies=bodies, run_sweep=sweep)


if __name__ == "__main__":
    raise SystemExit(main())
