"""What an answer costs Redis while it is kept: ``python -m bench.answer_bytes redis://host:port/db``.

Admits and finishes MNIST jobs through the job store as the API and a worker do, each outcome shaped
as the MNIST model's (labels, and ten float32 probabilities per image spread over many decades, as
a trained softmax's are), and reads ``MEMORY USAGE`` of the finished records, then what 10,000
one-image answers add to ``used_memory``. Empties the database it is given, before and after.
"""

from __future__ import annotations

import statistics
import sys
import uuid

import numpy as np
import redis

from inferq import keys
from inferq.jobs import Finished, JobStore, Outcome
from inferq.priorities import BULK, INTERACTIVE
from inferq.settings import Settings

MODEL = "mnist"


def mnist_answer(rng: np.random.Generator, images: int) -> Outcome:
    logits = rng.normal(0, 4, (images, 10)).astype(np.float32)
    logits[np.arange(images), rng.integers(0, 10, images)] += 20
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities = (probabilities / probabilities.sum(1, keepdims=True)).astype(np.float32)
    return Outcome.done({"model_version": 1, "outputs": {"labels": probabilities.argmax(1).astype(np.int64),
                                                         "probabilities": probabilities}})


def answer_job(store: JobStore, rng: np.random.Generator, priority: str, filenames: list[str]) -> str:
    job_id = str(uuid.uuid4())
    assert store.admit([(job_id, filenames)], model=MODEL, priority=priority) == [None]
    store.finish([Finished(job_id, len(filenames), MODEL, priority, None, mnist_answer(rng, len(filenames)))])
    return job_id


def main(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushdb()
    store = JobStore(client, result_ttl_s=3600, depth_limits=Settings().depth_limits)
    rng = np.random.default_rng(0)
    print(f"Redis {client.info('server')['redis_version']}")
    for priority, filenames in ((INTERACTIVE, ["digit.png"]), (BULK, [f"{i}.png" for i in range(64)]),
                                (BULK, ["batch.idx"] * 1000)):
        sizes = [client.memory_usage(keys.job(answer_job(store, rng, priority, filenames)), samples=0)
                 for _ in range(20)]
        print(f"{len(filenames):5d} images ({priority}): MEMORY USAGE of the record {statistics.median(sizes):,.0f} B")
    before = client.info("memory")["used_memory"]
    for _ in range(10_000):
        answer_job(store, rng, INTERACTIVE, ["digit.png"])
    grown = (client.info("memory")["used_memory"] - before) / 10_000
    print(f"10,000 one-image answers: used_memory grew {grown:,.0f} B each")
    client.flushdb()


if __name__ == "__main__":
    main(sys.argv[1])
