"""TF Serving's gRPC API (``tensorflow.serving.PredictionService`` and ``ModelService``), so that its
clients (``tensorflow_serving.apis.prediction_service_pb2_grpc``) work unchanged, on the same queue
and with the same checks as its REST routes (``api.tfserving.routes``). Served by ``api.grpc.server``
beside KServe's ``inference.GRPCInferenceService``. One module a concept:

- ``servicer``: each RPC, done as the REST route does it.
- ``tensors``: ``TensorProto`` to and from arrays, checked against the model's spec.
- ``examples``: a ``ClassificationRequest``'s tf.Examples as the REST route's ``examples``.
- ``protos``: TF Serving's messages and services, generated from the descriptors its wheels carry.

Nothing here imports TensorFlow: the messages are this package's own modules.
"""
