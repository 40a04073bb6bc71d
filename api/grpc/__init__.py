"""The gRPC front end: KServe v2's ``inference.GRPCInferenceService`` (Triton's gRPC API), so that
tritonclient.grpc and other v2 gRPC clients work unchanged, and TF Serving's
``tensorflow.serving.PredictionService`` (``tfserving``), on the same queue as the HTTP routes.

Its own process (``python -m api.grpc``) beside the HTTP API. One module a concept, as tritonclient
lays out its protocols:

- ``server``: the process: a grpcio server on a thread pool, TLS, the services it serves.
- ``servicer``: each RPC, done by ``api.kserve.open_inference`` as the HTTP route does it.
- ``calls``: what every servicer's RPC shares: the app's context, refusals as statuses, the deadline.
- ``tfserving``: TF Serving's services, done as its REST routes do them, with their own protos.
- ``codec``: the protocol's messages to and from what ``api.kserve.open_inference`` takes and gives.
- ``status``: an :class:`api.errors.ApiError` as a gRPC status, with the HTTP route's message.
- ``auth``: the API key, as ``authorization: Bearer <key>`` metadata.
- ``health``: ``grpc.health.v1``, for Kubernetes' gRPC probes.
- ``protos``: Triton's .proto files, vendored, and the modules generated from them.

Like the HTTP API, it never imports TensorFlow.
"""
