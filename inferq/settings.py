"""Every setting inferq reads, with its default, in one typed object.

Each field is set by the environment variable of the same name in upper case (``max_batch_size``
by ``MAX_BATCH_SIZE``); an unset or empty variable keeps the default written here, which is the one
place defaults live. Settings are read once, by whoever builds an app, a worker or a launcher, and
passed down: nothing reads the environment at import time. The README's table lists them all.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping

from inferq.callbacks import signing_key
from inferq.priorities import BULK, INTERACTIVE
from inferq.redis_connection import names_sentinels
from inferq.repository import ModelNameError, check_name

#: The HTTP servers the API runs under, each tested.
API_SERVERS = ("gunicorn", "granian")
#: The gunicorn worker classes the API is tested with.
API_WORKER_CLASSES = ("gevent", "gthread")
#: Redis's ``appendfsync`` policies inferq offers: no "no", which leaves writes to the kernel's
#: whim (30 s and more) and so breaks the promise that what is answered is kept.
APPENDFSYNC_POLICIES = ("everysec", "always")


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


@dataclasses.dataclass(frozen=True)
class Settings:
    #: Broker and job store: one Redis, or Sentinels (``sentinel://host:26379;sentinel://...``) and
    #: the master they name. Unset under ``make up``: it starts an embedded Redis and sets this.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: The name the Sentinels know the master by, when REDIS_URL names Sentinels.
    redis_sentinel_master: str = "mymaster"
    #: Replicas that must hold a job's admission before the request is answered (Redis's WAIT):
    #: replication is asynchronous, and a failover promotes a replica, so an admission only the old
    #: master held would be lost. One they do not acknowledge in time is refused with 503. Never
    #: more than the master has online (``inferq.replication``). Unset: 1 when REDIS_URL names
    #: Sentinels, else 0 (no wait).
    redis_min_replicas_acked: int | None = None
    #: How long an admission waits for those replicas.
    redis_replica_ack_timeout_ms: int = 500
    #: The model repository: ``<name>/<version>/saved_model.pb`` for each model, and an optional
    #: ``<name>/config.json`` (``inferq.model_config``). Every model in it is served.
    model_repository: str = "models"
    #: The first releases' setting: one model's directory, ``<version>/saved_model.pb``. When set,
    #: it is served instead of MODEL_REPOSITORY, as the one model MODEL_NAME.
    model_dir: str | None = None
    #: The name of a model whose directory holds its versions directly (MODEL_DIR, or a
    #: MODEL_REPOSITORY laid out that way).
    model_name: str = "mnist"
    #: The model ``POST /recognize`` and ``POST /jobs`` answer with.
    default_model: str = "mnist"
    #: The models a worker process serves, comma-separated; unset: every model in the repository.
    worker_models: str | None = None
    #: The four MNIST IDX files the trainer reads.
    mnist_data_dir: str = "data/mnist"
    #: The Celery queue the API sends images to and workers consume.
    queue_name: str = "inferq"

    #: HTTP port of the API.
    port: int = 8080
    #: The HTTP server under the Flask app: "gunicorn" (config/gunicorn.conf.py, its worker class
    #: API_WORKER_CLASS) or "granian" (api/granian_server.py: HTTP parsed in Rust, the app run by a
    #: pool of API_THREADS threads a process). Why gunicorn stays the default: docs/benchmarks.md.
    api_server: str = "gunicorn"
    #: Processes of the API (gunicorn's or granian's workers).
    api_processes: int = 2
    #: How each gunicorn process serves its connections: "gevent", a greenlet per connection (a
    #: sync request waiting on its answer costs a few kilobytes, and there is no hand-off between
    #: threads per request), or "gthread", a pool of API_THREADS threads.
    api_worker_class: str = "gevent"
    #: Threads per API process that run the app, under granian and gthread. A sync request holds
    #: its thread while it waits for its answer, so API_PROCESSES x API_THREADS is how many sync
    #: requests are in flight at once, and so how many images one batch can gather from them; the
    #: rest wait in the server, costing no thread. 2 x 16 is more than batches gathered at 64
    #: clients (docs/benchmarks.md): more threads would contend for the GIL and batch no more.
    api_threads: int = 16
    #: Connections (gunicorn's worker_connections) or requests (granian's backpressure) an API
    #: process takes at once.
    api_connections: int = 1000
    #: Port of the gRPC front end (``python -m api.grpc``: KServe v2's GRPCInferenceService), Triton's.
    grpc_port: int = 8001
    #: Processes of the gRPC front end, sharing GRPC_PORT (SO_REUSEPORT), as API_PROCESSES.
    grpc_processes: int = 2
    #: Threads of each gRPC server process's pool. A call to infer holds one while it waits for its answer,
    #: so this bounds the gRPC calls in flight; the rest wait in grpcio, costing no thread.
    grpc_threads: int = 64
    #: Port on which the gRPC front end serves its calls' metrics (``GET /metrics``; Triton's); 0: not served.
    grpc_metrics_port: int = 8002
    #: PEM files of the gRPC front end's certificate (chain) and key: both set, it serves TLS only.
    grpc_tls_cert_file: str | None = None
    grpc_tls_key_file: str | None = None
    #: Celery worker processes ``make up`` starts (each holds its own copy of the model).
    workers: int = 1
    #: Where ``make up`` keeps its embedded Redis's data.
    run_dir: str = ".run"
    #: When the embedded Redis writes its append-only file to disk (``appendfsync``): "everysec",
    #: a host crash (power, kernel) loses up to the last second of writes, admissions answered 202
    #: included; "always", every write is on disk before Redis answers it, so a 202 is on disk, at
    #: an fsync per write (docs/benchmarks.md, "Durability"). A process crash loses nothing with
    #: either. A Redis of your own: set ``appendfsync`` in its configuration.
    redis_appendfsync: str = "everysec"

    #: A batch is run once it holds this many images ...
    max_batch_size: int = 64
    #: ... or this long after its first image arrived, whichever comes first.
    max_batch_wait_ms: float = 5.0
    #: TensorFlow thread pools of a worker (0: TensorFlow's choice, a thread per core). One thread
    #: each runs this service's batches as fast (the MLP is too small to split), and TensorFlow's
    #: idle threads spin, taking CPU from the API and the other workers: scale with processes.
    tf_intra_op_threads: int = 1
    tf_inter_op_threads: int = 1

    #: How long ``POST /recognize`` waits for its answer before a 504 that carries the job id.
    sync_timeout_s: float = 30.0
    #: How long a job and its results stay readable.
    result_ttl_s: int = 3600
    #: The longest ``Prefer: respond-async, wait=N`` a waiting route honours: a longer N waits this
    #: long before answering 202 with the job's location.
    prefer_wait_max_s: float = 60.0
    #: The longest ``GET /jobs/<id>?wait=S`` (a long poll that answers when the job ends) waits.
    job_wait_max_s: float = 60.0
    #: How long ``GET /jobs/<id>/events`` streams a job's changes at most before it ends the stream
    #: (a client's EventSource then reconnects).
    job_events_max_s: float = 300.0
    #: Seconds after which a message a worker took but never acknowledged (it died) is delivered again.
    visibility_timeout_s: int = 60
    #: Seconds bulk work waits at most behind interactive work: past it, the oldest bulk message
    #: is taken first, one claim in two at most (docs/design.md, "Queues and bells").
    bulk_max_wait_s: float = 30.0
    #: Seconds between worker heartbeats; a worker is presumed gone after three missed ones.
    heartbeat_interval_s: float = 2.0
    #: Seconds after which a model no worker has announced is forgotten (``inferq.catalog``): until
    #: then work is admitted for it with its workers scaled to zero, and /readyz waits for one. While
    #: no worker at all is alive, none is forgotten.
    model_forget_after_s: float = 3600.0

    #: Upload limits: bytes per request, pixels per image (decompression bombs), images per request.
    max_request_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_images_per_request: int = 1024
    #: Pixels of all a request's image files together, read from their headers before any is
    #: decoded: what one request may cost to decode. A small PNG of a large plain image is a few
    #: KB, so the byte limit bounds nothing here. Four images at the pixel limit (five 12 MP
    #: photos; 1,024 MNIST digits are 0.8 M). Bulk files (IDX, .npy) are not decoded: not counted.
    max_request_pixels: int = 4 * 4096 * 4096
    #: Queued bulk images past which new bulk work is refused with 503 and Retry-After.
    max_queue_depth: int = 100_000
    #: Queued interactive images past which new interactive work is refused likewise: a limit of
    #: its own, so that a bulk backlog never refuses the work people wait on.
    max_interactive_queue_depth: int = 10_000

    #: When set, every route but /healthz and /readyz needs ``Authorization: Bearer <key>``, and
    #: /readyz without it says only whether the service is ready.
    api_key: str | None = None
    #: Web origins (``https://host[:port]``, comma-separated) whose pages may send state-changing
    #: requests from a browser, besides the API's own: a browser's POST from any other site is
    #: refused with 403 (``api.auth``). Clients that are not browsers are never affected.
    allowed_origins: str | None = None
    #: Prefixes (comma-separated) a job's ``callback`` URL must start with, such as
    #: ``https://hooks.example.com/inferq/``; unset or empty: callbacks are refused (422). A prefix
    #: of a bare origin matches that origin only. Keeps the workers from being made to call
    #: arbitrary hosts (the metadata service, the Redis next door).
    callback_allowed_urls: str | None = None
    #: The key callbacks are signed with (Standard Webhooks): ``whsec_`` and the base64 of 24 to 64
    #: random bytes (``python -c 'from inferq.callbacks import new_secret; print(new_secret())'``).
    #: Needed when CALLBACK_ALLOWED_URLS is set; the same on every worker.
    callback_secret: str | None = None
    #: POSTs of one callback, at most, before it is marked failed ...
    callback_max_attempts: int = 10
    #: ... or seconds after its job ended, whichever comes first. At most RESULT_TTL_S: the
    #: delivery's state lives in the job's record.
    callback_max_age_s: float = 3600.0
    #: Seconds one POST may take to connect and answer; a slower one counts as failed.
    callback_timeout_s: float = 10.0
    #: Seconds before the second try; each later wait doubles.
    callback_backoff_s: float = 1.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``environ`` (default ``os.environ``), then ``overrides`` by field name."""
        environ = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(field.name.upper(), "")
            if raw != "":
                values[field.name] = _parse(field.name.upper(), hints[field.name], raw)
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        positive = (
            "port", "grpc_port", "grpc_processes", "grpc_threads",
            "api_processes", "api_threads", "api_connections", "workers", "max_batch_size", "sync_timeout_s",
            "result_ttl_s", "visibility_timeout_s", "heartbeat_interval_s", "model_forget_after_s",
            "max_request_bytes", "max_image_pixels", "max_images_per_request", "max_request_pixels",
            "max_queue_depth", "max_interactive_queue_depth",
            "redis_replica_ack_timeout_ms",
            "prefer_wait_max_s", "job_wait_max_s", "job_events_max_s",
            "callback_max_attempts", "callback_max_age_s", "callback_timeout_s", "callback_backoff_s",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name.upper()} must be positive, got {getattr(self, name)!r}")
        non_negative = ("grpc_metrics_port", "max_batch_wait_ms", "bulk_max_wait_s", "tf_intra_op_threads",
                        "tf_inter_op_threads", "redis_min_replicas_acked")
        for name in non_negative:
            if (getattr(self, name) or 0) < 0:
                raise SettingsError(f"{name.upper()} must not be negative, got {getattr(self, name)!r}")
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise SettingsError("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together: set both (TLS) or neither")
        if self.api_server not in API_SERVERS:
            raise SettingsError(f"API_SERVER must be one of {', '.join(API_SERVERS)}, got {self.api_server!r}")
        if self.redis_appendfsync not in APPENDFSYNC_POLICIES:
            raise SettingsError(f"REDIS_APPENDFSYNC must be one of {', '.join(APPENDFSYNC_POLICIES)}, "
                                f"got {self.redis_appendfsync!r}")
        if self.api_worker_class not in API_WORKER_CLASSES:
            raise SettingsError(f"API_WORKER_CLASS must be one of {', '.join(API_WORKER_CLASSES)}, "
                                f"got {self.api_worker_class!r}")
        # Model names are parts of queue names, Redis keys and URLs.
        names = [("model_name", self.model_name), ("default_model", self.default_model),
                 *(("worker_models", name) for name in sorted(self.served_models or ()))]
        for setting, name in names:
            try:
                check_name(name)
            except ModelNameError as exc:
                raise SettingsError(f"{setting.upper()}: {exc}") from None
        for origin in self.trusted_origins:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise SettingsError(f"ALLOWED_ORIGINS: {origin!r} is not an origin such as https://example.com:8443 "
                                    "(scheme and host, no path)")
        if self.callback_prefixes and not self.callback_secret:
            raise SettingsError("CALLBACK_SECRET must be set when CALLBACK_ALLOWED_URLS is: callbacks are signed")
        if self.callback_secret:
            try:
                signing_key(self.callback_secret)
            except ValueError as exc:
                raise SettingsError(f"CALLBACK_SECRET {exc}") from None
        for prefix in self.callback_prefixes:
            if not re.match(r"https?://[^/\s]+", prefix):
                raise SettingsError(f"CALLBACK_ALLOWED_URLS: {prefix!r} is not an http(s) URL prefix")
        if self.callback_max_age_s > self.result_ttl_s:
            raise SettingsError(f"CALLBACK_MAX_AGE_S ({self.callback_max_age_s:g}) must not exceed RESULT_TTL_S "
                                f"({self.result_ttl_s}): a delivery's state lives in the job's record")
        for name in ("max_queue_depth", "max_interactive_queue_depth"):
            if self.max_images_per_request > getattr(self, name):
                raise SettingsError(f"MAX_IMAGES_PER_REQUEST ({self.max_images_per_request}) must not exceed "
                                    f"{name.upper()} ({getattr(self, name)}): such a request could never be queued")

    @property
    def repository_root(self) -> str:
        """Where the models are: MODEL_DIR where set (one model), else MODEL_REPOSITORY."""
        return self.model_dir or self.model_repository

    @property
    def trusted_origins(self) -> tuple[str, ...]:
        """ALLOWED_ORIGINS as a list."""
        return tuple(origin.strip() for origin in (self.allowed_origins or "").split(",") if origin.strip())

    @property
    def callback_prefixes(self) -> tuple[str, ...]:
        """CALLBACK_ALLOWED_URLS as a list."""
        return tuple(prefix.strip() for prefix in (self.callback_allowed_urls or "").split(",") if prefix.strip())

    @property
    def served_models(self) -> frozenset[str] | None:
        """The models a worker serves (WORKER_MODELS), or None for all."""
        names = frozenset(name.strip() for name in (self.worker_models or "").split(",") if name.strip())
        return names or None

    def model_queue(self, model: str) -> str:
        """The base name of a model's queues, one a priority (``inferq.priorities.queue``)."""
        return f"{self.queue_name}.{model}"

    @property
    def replicas_to_await(self) -> int:
        """How many replicas must acknowledge an admission (REDIS_MIN_REPLICAS_ACKED, resolved)."""
        if self.redis_min_replicas_acked is not None:
            return self.redis_min_replicas_acked
        return 1 if names_sentinels(self.redis_url) else 0

    @property
    def depth_limits(self) -> dict[str, int]:
        """Each priority's limit on queued images."""
        return {INTERACTIVE: self.max_interactive_queue_depth, BULK: self.max_queue_depth}


def _parse(name: str, hint: object, raw: str) -> object:
    if isinstance(hint, types.UnionType):  # ``str | None``: a set variable is the string
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    try:
        return typing.cast(type, hint)(raw)
    except ValueError:
        kind = {int: "an integer", float: "a number"}.get(typing.cast(type, hint), str(hint))
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
