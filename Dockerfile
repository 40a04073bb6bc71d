# syntax=docker/dockerfile:1
# One image for every inferq service: api, worker, trainer (and flower under its profile).
# EXTRAS picks the TensorFlow build: "cpu,monitoring" (default) or "gpu,monitoring" for GPU workers.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=cpu,monitoring
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY inferq inferq
COPY api api
COPY worker worker
COPY trainer trainer
RUN pip install ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin inferq \
    && mkdir -p /models /data/mnist \
    && chown inferq:inferq /models /data/mnist
COPY --from=build /venv /venv
WORKDIR /app
COPY config config
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MODEL_REPOSITORY=/models \
    MNIST_DATA_DIR=/data/mnist
USER inferq
EXPOSE 8080
# The API under the HTTP server API_SERVER names (granian or gunicorn).
CMD ["python", "-m", "api.serve"]
