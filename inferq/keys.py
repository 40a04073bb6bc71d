"""Every Redis key inferq writes, besides the broker's own (the Celery queue and kombu's bookkeeping)."""

PREFIX = "inferq"


#: Sorted set of worker names scored by their last heartbeat (unix seconds).
WORKERS = f"{PREFIX}:workers"

#: Hash of model name -> the JSON list of its served versions' specs (``inferq.catalog``).
MODELS = f"{PREFIX}:models"

#: Hash of model name -> when a worker last announced it (unix seconds), beside ``MODELS``.
MODELS_ANNOUNCED = f"{PREFIX}:models:announced"

#: Held (SET NX, expiring) by the worker whose turn it is to recount the queued-items counters.
RECOUNT_TURN = f"{PREFIX}:recount-turn"



def queued_images(model: str, priority: str) -> str:
    """Sum of the images of every admitted job of ``model`` and ``priority`` not yet finished: what
    backpressure compares with that priority's limit."""
    return f"{PREFIX}:queued-images:{model}:{priority}"


def unfinished(model: str, priority: str) -> str:
    """Hash of every admitted job of ``model`` and ``priority`` not yet finished: job id -> its
    images. What its queued-images counter adds up, so that the counter can be reconciled."""
    return f"{PREFIX}:unfinished:{model}:{priority}"


#: Admissions written on the master but not acknowledged by the replicas asked for (a counter).
UNREPLICATED_ADMISSIONS = f"{PREFIX}:unreplicated-admissions"


def job(job_id: str) -> str:
    """Hash of one job: status, image count, filenames, results or error, timestamps. Kept while
    the job is queued or running; expires RESULT_TTL after its outcome."""
    return f"{PREFIX}:job:{job_id}"


def job_events(job_id: str) -> str:
    """Pub/sub channel of one job's changes (running, progress, its outcome), published by the job
    store's scripts as they write them: a JSON ``{"job_id", "status", "items_done", "items"}`` that
    says the record changed (the record is the truth; a message may be missed)."""
    return f"{PREFIX}:job-events:{job_id}"


def job_inputs(job_id: str) -> str:
    """Hash of a job's inputs too large to travel in its message (``inferq.messages``): input name
    -> raw little-endian bytes. Written when the job is admitted, deleted when it finishes."""
    return f"{PREFIX}:job-inputs:{job_id}"


def replies(listener: str) -> str:
    """List of outcomes for one API process's waiting requests: each item the ``[job id, outcome]``
    pairs of one batch."""
    return f"{PREFIX}:replies:{listener}"


def idempotency(scope: str) -> str:
    """One ``Idempotency-Key`` of one caller for one model (``scope``: a hash of the three, made by
    ``api.queue.idempotency``): JSON of the request's fingerprint and the job it made. Bound to the job
    once it is admitted, it expires with the job's record."""
    return f"{PREFIX}:idempotency:{scope}"


def worker(name: str) -> str:
    """A worker's last heartbeat (JSON), expiring when the worker stops sending them."""
    return f"{PREFIX}:worker:{name}"

#: List of the messages the broker's claim could not deliver (their properties unreadable), each
#: as it was queued: set aside rather than lost, counted by /status.
DEAD_LETTERS = f"{PREFIX}:dead-letters"


def lane_admitted(model: str, priority: str) -> str:
    """Images ever admitted to the lane of ``model`` and ``priority``: a counter that only grows. A
    job's record keeps its value before the job (``lane_mark``), so that what the lane has drained
    since tells how much is still ahead of it (``inferq.drain``)."""
    return f"{PREFIX}:lane-admitted:{model}:{priority}"


def lane_finished(model: str, priority: str) -> str:
    """Images of the lane of ``model`` and ``priority`` that ever left it (finished, withdrawn,
    cancelled): a counter that only grows, beside ``lane_admitted``."""
    return f"{PREFIX}:lane-finished:{model}:{priority}"


def drain_samples(model: str) -> str:
    """List of recent samples (JSON ``[unix time, images finished, images queued]``, newest first)
    of a model's lanes, from which the workers measure its drain rate."""
    return f"{PREFIX}:drain-samples:{model}"


def drain_rate(model: str) -> str:
    """A model's measured drain rate (JSON ``{"images_per_s", "measured_at"}``), expiring."""
    return f"{PREFIX}:drain-rate:{model}"


#: Held (SET NX, expiring within an interval) by the worker whose turn it is to sample the lanes.
DRAIN_TURN = f"{PREFIX}:drain-turn"

#: Sorted set of job ids whose callback is due, scored by when (unix seconds): a claimed one is
#: scored by when its claim's lease ends, so that a dead deliverer's work comes due again.
CALLBACKS_DUE = f"{PREFIX}:callbacks-due"


#: Hash of tenant name -> its weight, written by the API from its tenants (``inferq.tenants``), read
#: by the workers' claim (``inferq.broker``); a tenant missing from it weighs 1.
TENANT_WEIGHTS = f"{PREFIX}:tenant-weights"


def tenant_queued(tenant: str) -> str:
    """Items of ``tenant``'s admitted jobs not yet ended, every model and lane together: what its
    ``max_queued_items`` is compared with (``inferq.jobs``)."""
    return f"{PREFIX}:tenant-queued:{tenant}"


def tenant_finished(tenant: str) -> str:
    """Items of ``tenant``'s jobs that ever ended: a counter that only grows, from which the
    workers measure the tenant's drain rate (``inferq.drain``)."""
    return f"{PREFIX}:tenant-finished:{tenant}"


def tenant_bucket(tenant: str) -> str:
    """Hash of ``tenant``'s admission token bucket (``tokens``, ``at``): its ``max_items_per_s``."""
    return f"{PREFIX}:tenant-bucket:{tenant}"


def tenant_drain_samples(tenant: str) -> str:
    """As ``drain_samples``, of one tenant's items, all its lanes together."""
    return f"{PREFIX}:tenant-drain-samples:{tenant}"


def tenant_drain_rate(tenant: str) -> str:
    """As ``drain_rate``, of one tenant's items: what its 429's Retry-After is read from."""
    return f"{PREFIX}:tenant-drain-rate:{tenant}"


def tenant_admitted(tenant: str) -> str:
    """Items of ``tenant`` ever admitted: a counter that only grows."""
    return f"{PREFIX}:tenant-admitted:{tenant}"


def tenant_refused(tenant: str) -> str:
    """Hash of the limit a refusal was for (``max_queued_items``, ``max_items_per_s``, or the
    lane's ``queue_full``) -> items of ``tenant`` refused for it: counters that only grow."""
    return f"{PREFIX}:tenant-refused:{tenant}"


def tenant_waits(tenant: str) -> str:
    """Hash of ``jobs`` started and the ``seconds`` they waited queued, of ``tenant``: counters
    that only grow, added to as each job starts."""
    return f"{PREFIX}:tenant-waits:{tenant}"
