"""The HTTP and gRPC front ends: they queue requests for the workers and never import TensorFlow.

``api.app.create_app(settings)`` builds the Flask app; ``python -m api.serve`` serves it (granian or
gunicorn), ``python -m api.grpc`` the gRPC front end. The layout follows a request (docs/design.md,
"The API's layout"): a protocol package (``images``, ``tfserving``, ``kserve``, ``grpc``) reads it,
``queue`` sends it to the workers and waits for the answer, ``inferq`` (the core) holds the jobs.
This module imports nothing, so importing any leaf module stays cheap.
"""
