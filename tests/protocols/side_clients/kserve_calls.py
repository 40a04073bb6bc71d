"""The KServe Python SDK's gRPC client (``kserve.InferenceGRPCClient``) and its own generated stub
against inferq: ``python kserve_calls.py ADDRESS API_KEY IMAGES.npy``; prints what it saw as JSON.

Run in a side venv with kserve installed, never in the project's (it imports none of inferq)."""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from kserve.protocol.infer_type import RequestedOutput


def answer(response) -> dict:
    outputs = {output.name: output.as_numpy() for output in response.outputs}
    return {"id": response.id, "model_version": response.model_version, "outputs": sorted(outputs),
            **{f"{name}_dtype": str(array.dtype) for name, array in outputs.items()},
            **{name: array.tolist() for name, array in outputs.items()}}


def refusal(error: grpc.RpcError) -> dict:
    return {"code": error.code().name, "message": error.details()}


async def main(address: str, api_key: str, images_path: str) -> dict:
    images = np.load(images_path)
    key = (("authorization", f"Bearer {api_key}"),)
    seen: dict = {}
    # retries=0: an UNAVAILABLE here is an answer to see, not to retry.
    async with InferenceGRPCClient(address, timeout=30, retries=0) as client:
        seen["live"] = await client.is_server_live(headers=key)
        seen["ready"] = await client.is_server_ready(headers=key)
        seen["model_ready"] = await client.is_model_ready("mnist", headers=key)
        seen["unknown_model_ready"] = await client.is_model_ready("fashion", headers=key)

        flat = images.reshape(len(images), 784)
        raw = InferInput("inputdata", list(flat.shape), "FP32")
        raw.set_data_from_numpy(flat.astype(np.float32))  # binary: raw_input_contents
        seen["fp32_raw"] = answer(await client.infer(InferRequest("mnist", [raw], request_id="k-1"), headers=key))
        typed = InferInput("inputdata", [2, 784], "FP32", data=flat[:2].astype(np.float32).ravel().tolist())
        seen["fp32_typed"] = answer(await client.infer(
            InferRequest("mnist", [typed], request_id="k-2", request_outputs=[RequestedOutput("labels")]),
            headers=key))
        pixels = InferInput("inputdata", [3, 784], "UINT8")
        pixels.set_data_from_numpy(flat[:3].astype(np.uint8))
        seen["uint8_raw"] = answer(await client.infer(InferRequest("mnist", [pixels], request_id="k-3"),
                                                      headers=key))
        typed_pixels = InferInput("inputdata", [1, 784], "UINT8", data=flat[:1].astype(np.uint8).ravel().tolist())
        seen["uint8_typed"] = answer(await client.infer(InferRequest("mnist", [typed_pixels], request_id="k-4"),
                                                        headers=key))

        wrong = InferInput("inputdata", [1, 784], "INT32")
        wrong.set_data_from_numpy(flat[:1].astype(np.int32))
        try:
            await client.infer(InferRequest("mnist", [wrong]), headers=key)
        except grpc.RpcError as error:
            seen["wrong_datatype"] = refusal(error)
        text = InferInput("inputdata", [1, 1], "BYTES", data=["seven"])  # BYTES where the model takes FP32
        try:
            await client.infer(InferRequest("mnist", [text]), headers=key)
        except grpc.RpcError as error:
            seen["bytes"] = refusal(error)
        try:
            await client.infer(InferRequest("fashion", [raw]), headers=key)
        except grpc.RpcError as error:
            seen["unknown_model"] = refusal(error)
        try:
            await client.is_server_live()
        except grpc.RpcError as error:
            seen["no_key"] = refusal(error)

    # What InferenceGRPCClient has no method for, through the SDK's own generated stub.
    async with grpc.aio.insecure_channel(address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        server = await stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=key, timeout=30)
        seen["server_metadata"] = {"name": server.name, "extensions": list(server.extensions)}
        model = await stub.ModelMetadata(pb.ModelMetadataRequest(name="mnist"), metadata=key, timeout=30)
        seen["model_metadata"] = {
            "name": model.name, "versions": list(model.versions), "platform": model.platform,
            "inputs": [[t.name, t.datatype, list(t.shape)] for t in model.inputs],
            "outputs": [[t.name, t.datatype, list(t.shape)] for t in model.outputs]}
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))))
