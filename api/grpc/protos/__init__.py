"""Triton's KServe v2 gRPC messages and service (``inference.GRPCInferenceService``), generated.

``grpc_service.proto`` and ``model_config.proto`` are vendored unchanged from
triton-inference-server/common (``protobuf/`` at commit 83adf7cf88a2f343005974dff3728be746de2d66, BSD
licence in each file's header), the commit whose descriptors tritonclient 2.73 carries byte for byte:
a process may import both (the tests do) without the two clashing in protobuf's descriptor pool.
The ``*_pb2*.py`` modules are generated from them (``make protos``, ``api.grpc.protos.generate``): never
edited by hand.
"""
