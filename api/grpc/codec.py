"""KServe v2's gRPC messages to and from what ``api.kserve.open_inference`` takes and gives.

A ``ModelInferRequest`` becomes the request the HTTP route decodes (``api.kserve.codec``), so that a
tensor is checked, and refused, by the same code whichever way it came:

- ``raw_input_contents`` (what tritonclient sends) are the binary data of the HTTP route: one entry
  an input, in the order of ``inputs``, each the input's ``binary_data_size``;
- typed ``contents`` are the JSON ``data``: the field of the input's datatype (``fp32_contents`` for
  FP32, ``int_contents`` for INT8, INT16 and INT32, ...), range-checked as JSON numbers are, except
  BYTES, whose ``bytes_contents`` are packed as binary data (JSON strings carry no bytes). FP16 and
  BF16 have no typed field: raw only, as in Triton.

Outputs are answered as ``raw_output_contents``, as Triton's server does and its client reads them.
"""

from __future__ import annotations

import struct

from api.errors import ApiError
from api.grpc.protos import grpc_service_pb2 as pb
from api.queue.dispatch import ModelOutputs
from inferq.dtypes import BY_KSERVE

#: The typed contents field of each datatype (model_config.proto's ``InferTensorContents``).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_LENGTH = struct.Struct("<I")


def parameters(holder) -> dict[str, object]:
    """A message's ``map<string, InferParameter>`` as plain values."""
    values: dict[str, object] = {}
    if not holder:  # most requests have none: no items() to walk
        return values
    for name, parameter in holder.items():
        which = parameter.WhichOneof("parameter_choice")
        values[name] = None if which is None else getattr(parameter, which)
    return values


def request_body(request: pb.ModelInferRequest) -> tuple[dict, bytes]:
    """The request as the HTTP route's JSON header and the binary data after it."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ApiError(400, f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs: each input's data is "
                            "one raw_input_contents entry, in the order of 'inputs' (or every input's in its "
                            "'contents')")
    inputs, chunks = [], []
    for index, tensor in enumerate(request.inputs):
        sent: dict[str, object] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        # Most tensors come raw, with no contents at all: HasField says so cheaper than ListFields.
        filled = [field.name for field, _ in tensor.contents.ListFields()] if tensor.HasField("contents") else []
        what = f"input {tensor.name!r}"
        if raw:
            if filled:
                raise ApiError(400, f"{what}: both 'contents' and raw_input_contents; send the request's "
                                    "data one way")
            chunks.append(raw[index])
            sent["parameters"] = {"binary_data_size": len(raw[index])}
        else:
            field = CONTENTS.get(tensor.datatype)
            if filled != [field] and filled:
                expected = (f"its values go in '{field}'" if field
                            else "it has no typed contents: send raw_input_contents")
                raise ApiError(400, f"{what}: {tensor.datatype} values in {', '.join(map(repr, filled))}; {expected}")
            if field is None and tensor.datatype in BY_KSERVE:
                raise ApiError(400, f"{what}: {tensor.datatype} has no typed contents: send raw_input_contents")
            values = getattr(tensor.contents, field) if field else ()
            if field == "bytes_contents":
                chunks.append(b"".join(_LENGTH.pack(len(value)) + value for value in values))
                sent["parameters"] = {"binary_data_size": len(chunks[-1])}
            elif field:
                sent["data"] = list(values)  # none: the decoder counts them against the shape
        inputs.append(sent)
    body = {"inputs": inputs, "parameters": parameters(request.parameters),
            "outputs": [{"name": output.name} for output in request.outputs] if request.outputs else []}
    return body, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def response(request: pb.ModelInferRequest, outputs: list[dict], blobs: list[bytes],
             answer: ModelOutputs) -> pb.ModelInferResponse:
    """The answer, each output as raw data (``outputs`` and ``blobs`` from
    ``api.kserve.codec.encode_outputs``, every output as binary)."""
    return pb.ModelInferResponse(
        model_name=request.model_name, model_version=str(answer.version), id=request.id,
        outputs=[pb.ModelInferResponse.InferOutputTensor(name=output["name"], datatype=output["datatype"],
                                                         shape=output["shape"]) for output in outputs],
        raw_output_contents=blobs,
    )
