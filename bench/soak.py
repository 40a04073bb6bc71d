"""``python -m bench.soak``: sustained load at about 70% of capacity, checked for what wears.

Starts the system as ``make bench`` does, measures its capacity (or takes ``--rps``), then holds
wrk near that rate for ``--seconds`` (five minutes by default), in runs of ten seconds whose pacing
is corrected from the rate the last one reached, and samples every few seconds the resident memory
of the API's and the workers' processes and the queue depth. It passes when no request failed,
each role's memory at the end is within 10% of what it was after the warm-up, and the queue never
held more images than there are clients; answers that differ from MNIST's labels, the model's own
mistakes, are counted but not judged. It exits 0 or 1 and ends with one JSON line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench import opening, systems
from bench.load import wrk, wrk_command, wrk_result

CONNECTIONS = 16
SEGMENT_S = 10.0
SAMPLE_EVERY_S = 2.0
MEMORY_TOLERANCE = 0.10


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.soak", __doc__)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rps", type=float, help="requests a second (default: --fraction of measured capacity)")
    parser.add_argument("--fraction", type=float, default=0.7)
    parser.add_argument("--warmup", type=float, default=30, help="seconds before the memory baseline")
    args = parser.parse_args(argv)

    if (found := opening.trained("bench.soak")) is None:
        return 1
    model_dir, setup = found
    bodies = setup.bodies()
    with opening.service(setup.work, model_dir) as (_, running):
        rps = args.rps or args.fraction * wrk(running.base_url, 64, 5, bodies).rps
        print(f"soak: {rps:.0f} requests/s for {args.seconds:g} s, {CONNECTIONS} clients", flush=True)
        started = time.monotonic()
        pace_ms = 1000 * CONNECTIONS / rps
        results, samples = [], []
        while (left := args.seconds - (time.monotonic() - started)) > 1:
            load = subprocess.Popen(
                wrk_command(running.base_url, CONNECTIONS, round(min(left, SEGMENT_S)), bodies,
                            f"pace={pace_ms:.1f}", latency=False),
                stdout=subprocess.PIPE, text=True)
            samples += _sample_until_done(load, running, started)
            results.append(wrk_result(load.communicate()[0]))
            # Each client sends once per (latency + pace): take out the latency the last run had.
            reached = results[-1]["answered"] / results[-1]["duration_s"]
            pace_ms = max(0.0, pace_ms + 1000 * CONNECTIONS * (1 / rps - 1 / reached))
    verdict = _verdict(results, samples, args.warmup)
    print(json.dumps(verdict))
    return 0 if verdict["passed"] else 1


def _sample_until_done(load: subprocess.Popen, running: systems.Running, started: float) -> list[dict]:
    samples = []
    while load.poll() is None:
        pids = running.pids()
        samples.append({
            "t": round(time.monotonic() - started, 1),
            "api_rss_mb": _rss_mb(pids["api"]),
            "worker_rss_mb": _rss_mb(pids["worker"]),
            "queued_images": _queued_images(running.base_url),
        })
        print(f"  t={samples[-1]['t']:>6}s  api {samples[-1]['api_rss_mb']:7.1f} MB  "
              f"worker {samples[-1]['worker_rss_mb']:7.1f} MB  queued {samples[-1]['queued_images']}", flush=True)
        time.sleep(SAMPLE_EVERY_S)
    return samples


def _verdict(results: list[dict], samples: list[dict], warmup_s: float) -> dict:
    settled = [sample for sample in samples if sample["t"] >= warmup_s] or samples
    baseline, last = settled[0], settled[-1]
    growth = {role: (last[f"{role}_rss_mb"] - baseline[f"{role}_rss_mb"]) / baseline[f"{role}_rss_mb"]
              for role in ("api", "worker")}
    errors = sum(r["status_errors"] + r["socket_errors"] + r["timeouts"] for r in results)
    wrong = sum(r["wrong_labels"] for r in results)
    answered = sum(r["answered"] for r in results)
    max_queued = max(sample["queued_images"] for sample in samples)
    return {
        "requests": answered,
        "rps": round(answered / sum(r["duration_s"] for r in results), 1),
        "errors": errors,
        # Answers that differ from MNIST's label: the model's errors, reported, not judged here.
        "wrong_labels": wrong,
        "worst_p99_ms": max(r["p99_ms"] for r in results),
        "api_rss_growth": round(growth["api"], 3),
        "worker_rss_growth": round(growth["worker"], 3),
        "max_queued_images": max_queued,
        "passed": errors == 0 and max_queued <= CONNECTIONS
        and all(value <= MEMORY_TOLERANCE for value in growth.values()),
    }


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        total += int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1))
    return total / 1024


def _queued_images(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/status", timeout=5) as response:
        return json.loads(response.read())["queued_images"]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
