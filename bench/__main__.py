"""``python -m bench [--quick] [--model MODEL] [--servers S,...]``: inferq against the architecture it
grew from, on this machine.

By default three models, one per regime (``bench.models``): the original MLP (HTTP-bound), the CNN
(compute-bound) and a wide MLP (weight-bound); ``--quick`` runs the original MLP alone, with fewer
and shorter points; ``--model`` names one model to run instead, any SavedModel that takes MNIST
images. Every scenario (``bench.scenarios``) runs against each model, the reference server serving
the same SavedModel under the same HTTP server; ``--servers`` names the HTTP servers whose sync
sweeps run side by side. The tensor path also runs on NVIDIA PyTriton (``bench.peers``), the server
users would pick instead, with the same model, load and batching limits. Load comes from wrk
(Debian's package), which costs far less CPU than the servers it drives; the tensor path's, over
HTTP and gRPC alike, from h2load (``bench.tensors``). Last, two bulk tenants share the bulk lane
(``bench.tenants``, on the original MLP): each one's share while both have work, and their total
against one tenant alone, in alternating rounds.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import models, opening, peers, report
from bench import tenants as bench_tenants
from bench.scenarios import ModelRun, Plan, run_model
from bench.systems import redis_server
from inferq.settings import API_SERVERS

RESULTS = Path("bench/results")


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench", __doc__)
    parser.add_argument("--quick", action="store_true", help="one model, fewer and shorter points: about two minutes")
    parser.add_argument("--model", help="a model directory (versions under it), a SavedModel directory, the name of "
                        f"a model in MODEL_REPOSITORY, or one of {', '.join(models.REGIMES)}")
    parser.add_argument("--servers", default=",".join(API_SERVERS),
                        help="HTTP servers to measure inferq and the reference under, side by side; the first "
                             "for every scenario, the others for the sync sweeps (default: %(default)s)")
    parser.add_argument("--no-tenants", action="store_true",
                        help="leave out the two bulk tenants' fair share (bench.tenants)")
    parser.add_argument("--no-pytriton", action="store_true",
                        help="leave out the peer, NVIDIA PyTriton on the tensor path (bench.peers builds its venv "
                             "the first time: about 1 GB)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is missing; install it with `apt-get install wrk`", file=sys.stderr)
        return 1
    if shutil.which("h2load") is None:
        print("bench: h2load is missing; install it with `apt-get install nghttp2-client`", file=sys.stderr)
        return 1

    setup = opening.setup("bench")
    try:
        try:
            chosen = setup.models(args.model or None, quick=args.quick)
        except models.BenchModelError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        plan = Plan.for_run(args.quick, args.servers.split(","))
        peer = None if args.no_pytriton else _peer()
        bodies = setup.bodies()
        runs: list[ModelRun] = []
        with redis_server(setup.work) as redis_url:
            for index, model in enumerate(chosen):
                print(f"bench: {model.name} ({model.regime}): {model.origin}", flush=True)
                runs.append(run_model(model, redis_url, plan, setup.images, setup.labels, bodies, setup.work,
                                      with_mixed=index == 0, peer=peer))
        tenants = None if args.no_tenants else bench_tenants.fair_share(setup.settings, quick=args.quick)
    finally:
        shutil.rmtree(setup.work, ignore_errors=True)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    print("\n\n".join(report.model_report(run) for run in runs))
    report.save({"when": stamp, "quick": args.quick,
                 "models": {run.model.name: {**dataclasses.asdict(run), "summary": run.summary()} for run in runs},
                 "tenants": tenants},
                RESULTS / f"{stamp}.json")
    plots = [report.plot(run, RESULTS / f"{stamp}-{run.model.name}.png") for run in runs]
    print(f"results: {RESULTS / stamp}.json, plots: {', '.join(map(str, plots))}")
    print(json.dumps({run.model.name: run.summary() for run in runs}))
    return 0


def _peer() -> Path | None:
    """PyTriton's interpreter, its venv built where it is missing; None, having said why, where it cannot be."""
    try:
        return peers.ensure_venv()
    except peers.PeerUnavailable as exc:
        print(f"bench: {exc}; the run measures no PyTriton", file=sys.stderr, flush=True)
        return None


if __name__ == "__main__":
    sys.exit(main())
