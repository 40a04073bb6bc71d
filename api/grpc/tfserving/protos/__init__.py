"""TF Serving's gRPC messages and services (and TensorFlow's messages they use), generated.

``tfserving.protoset`` is the ``FileDescriptorSet`` of ``tensorflow_serving/apis/prediction_service.proto``,
``model_service.proto`` and everything they import, as tensorflow-serving-api 2.21.0 and TensorFlow
2.21.0 (Apache 2.0) carry them in their modules; ``grpcurl -protoset`` reads it. The ``*_pb2*.py``
modules under ``tensorflow/``, ``tensorflow_serving/`` and ``xla/`` are generated from it (``make
protos``, ``api.grpc.tfserving.protos.generate``): never edited by hand. They hold the very
descriptors TensorFlow's own modules hold, so a process may import both.
"""
