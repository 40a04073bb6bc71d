# syntax=docker/dockerfile:1
# The images of every inferq service, one target each:
#   --target api      the API (and Flower): no TensorFlow, a fraction of the worker's size
#   --target worker   workers and the trainer (the default target); EXTRAS=gpu for GPU workers
# PYTHON_IMAGE names the base: any Debian-based image with Python 3.11 and python3-venv (an offline
# one: deploy/docker/engine.sh base).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build-api
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY inferq inferq
COPY api api
COPY worker worker
COPY trainer trainer
RUN pip install ".[monitoring]"

FROM ${PYTHON_IMAGE} AS runtime
# The volumes compose makes take these directories' owner: the non-root user can write them.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin inferq \
    && mkdir -p /models /data/mnist \
    && chown inferq:inferq /models /data/mnist
WORKDIR /app
COPY config config
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODEL_REPOSITORY=/models \
    MNIST_DATA_DIR=/data/mnist
USER inferq
# The HTTP API's port, and the gRPC front end's (python -m api.grpc).
EXPOSE 8080 8001

FROM runtime AS api
COPY --from=build-api /venv /venv
# The API under the HTTP server API_SERVER names (granian or gunicorn).
CMD ["python", "-m", "api.serve"]

# The worker's environment is the API's plus TensorFlow: the API's layers are shared.
# After the api stage, so that building --target api never builds it (the classic builder builds
# every stage before the target).
FROM build-api AS build-worker
ARG EXTRAS=cpu
RUN pip install ".[${EXTRAS}]"

FROM runtime AS worker
COPY --from=build-worker /venv /venv
CMD ["celery", "-A", "worker.main", "worker", "--pool", "solo", "--without-mingle", "--without-gossip"]
