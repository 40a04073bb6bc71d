"""How the drain rate grows with worker processes, and how many one Redis could feed:
``python -m bench.scaling``.

For each worker count (1 and 2 by default, in alternating rounds so that a machine whose load
changes affects both alike), a queue of one-image messages is filled as the API fills it and
drained (``bench.drain``). Each row gives the rate, and Redis's own CPU time and commands per
message, read from INFO. From those: Redis, one thread, runs out of CPU at about
1 s / (its CPU per message) messages a second, which is that many times one worker's rate.

The model is the MNIST MLP's newest version, ``<MODEL_REPOSITORY>/mnist`` or MODEL_DIR's where that is
set (``make train``, or ``python -m trainer --epochs 1``: the weights do not change what a call costs).
Redis is an embedded one, or REDIS_URL's.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys

from bench import opening, systems
from bench.drain import DrainResult, drain


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.scaling", __doc__)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--messages", type=int, default=3000, help="one-image messages a drain (default 3000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the worker counts (default 2)")
    args = parser.parse_args(argv)
    if (found := opening.trained("bench.scaling")) is None:
        return 1
    model_dir, setup = found
    counts = [int(count) for count in args.workers.split(",")]

    results: list[DrainResult] = []
    with systems.redis_server(setup.work) as redis_url:
        for _ in range(args.rounds):
            for workers in counts:
                result = drain(redis_url, str(model_dir), setup.images, count=args.messages, per_message=1,
                               workers=workers)
                results.append(result)
                frequent = ", ".join(f"{name} {calls:g}" for name, calls in result.drain_commands_by_name.items()
                                     if calls >= 0.05)
                print(f"{workers} worker(s): {result.messages_per_s:,.0f} messages/s, mean batch "
                      f"{result.mean_batch:.1f}; Redis per message: admit {result.redis_cpu_us_admit:.0f} µs CPU "
                      f"({result.commands_admit:.1f} commands), drain {result.redis_cpu_us_drain:.0f} µs CPU "
                      f"({result.commands_drain:.1f} commands: {frequent})", flush=True)

    by_workers = {workers: [r for r in results if r.workers == workers] for workers in counts}
    one = statistics.median(r.messages_per_s for r in by_workers[counts[0]])
    redis_us = statistics.median(r.redis_cpu_us_admit + r.redis_cpu_us_drain for r in results)
    redis_ceiling = 1e6 / redis_us
    print(f"Redis CPU per message, admitted and drained: {redis_us:.0f} µs: one Redis thread runs out at about "
          f"{redis_ceiling:,.0f} messages/s = {redis_ceiling / one:.0f} workers at {one:,.0f} messages/s each")
    summary = {
        "messages_per_s": {workers: [round(r.messages_per_s) for r in rows] for workers, rows in by_workers.items()},
        "redis_cpu_us_per_message": round(redis_us, 1),
        "redis_ceiling_messages_per_s": round(redis_ceiling),
        "workers_one_redis_feeds": round(redis_ceiling / one),
        "runs": [dataclasses.asdict(r) for r in results],
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
