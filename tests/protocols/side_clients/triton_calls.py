"""tritonclient.grpc installed as its own pins have it (``tritonclient[grpc]``: protobuf<7) against
inferq: ``python triton_calls.py ADDRESS API_KEY IMAGES.npy``; prints what it saw as JSON.

Run in a side venv, never in the project's (it imports none of inferq). The project's own tests run
tritonclient.grpc on the project's protobuf 7; this is the client as its users install it."""

from __future__ import annotations

import json
import queue
import sys

import google.protobuf
import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException


def labels(result) -> list[int]:
    return result.as_numpy("labels").tolist()


def main(address: str, api_key: str, images_path: str) -> dict:
    flat = np.load(images_path).reshape(-1, 784).astype(np.float32)
    key = {"authorization": f"Bearer {api_key}"}
    seen: dict = {"protobuf": google.protobuf.__version__}
    client = triton_grpc.InferenceServerClient(address)
    tensor = triton_grpc.InferInput("inputdata", list(flat.shape), "FP32")
    tensor.set_data_from_numpy(flat)

    seen["live"] = client.is_server_live(headers=key)
    seen["ready"] = client.is_server_ready(headers=key)
    seen["model_ready"] = client.is_model_ready("mnist", headers=key)
    seen["model_metadata"] = client.get_model_metadata("mnist", headers=key, as_json=True)
    config = client.get_model_config("mnist", headers=key, as_json=True)["config"]
    seen["config"] = {"name": config["name"], "max_batch_size": config["max_batch_size"]}

    result = client.infer("mnist", [tensor], request_id="t-1", headers=key)
    seen["infer"] = {"labels": labels(result), "probabilities_shape": list(result.as_numpy("probabilities").shape),
                     "id": result.get_response().id}

    answers: queue.Queue = queue.Queue()
    client.async_infer("mnist", [tensor], callback=lambda result, error: answers.put((result, error)), headers=key)
    result, error = answers.get(timeout=30)
    seen["async_infer"] = {"labels": labels(result) if result else None, "error": str(error) if error else None}

    client.start_stream(callback=lambda result, error: answers.put((result, error)), headers=key)
    client.async_stream_infer("mnist", [tensor], request_id="s-1")
    result, error = answers.get(timeout=30)
    client.stop_stream()
    seen["stream_infer"] = {"labels": labels(result) if result else None, "error": str(error) if error else None,
                            "id": result.get_response().id if result else None}

    wrong = triton_grpc.InferInput("inputdata", [1, 784], "INT32")
    wrong.set_data_from_numpy(flat[:1].astype(np.int32))
    try:
        client.infer("mnist", [wrong], headers=key)
    except InferenceServerException as error:
        seen["wrong_datatype"] = {"status": error.status(), "message": error.message()}
    client.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
