"""A model served with the defaults against the settings ``inferq tune`` proposes, in the same run, and
the limit beside both: the model alone at the chosen batch on the same cores.

Per model: the tune measurement (``worker.tune``, the ``throughput`` objective, this machine's
cores); then inferq with the defaults and inferq with the proposal (its ``config.json`` beside the
model's versions in a directory of the run's own, its workers and thread counts in their
environment), alternately (default, tuned; then, in a full run, tuned, default), each swept with
sync clients and made to score the 10,000 test digits with ``inferq score``'s own path
(``bench.client``). The yardstick is what the tune measured: the chosen batch's call alone, times
the workers proposed; the bulk scoring's rate is shown as a share of it.

    python -m bench.tuned [--quick] [--model mnist|mnist_cnn|wide_mlp|DIR]
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np

from bench import models, opening, systems
from bench.client import ClientResult, client_score
from bench.load import SyncPoint, wrk
from inferq import model_config, repository
from worker import tune

#: Sync clients each system is swept with: one alone (light load), and 64 (a full queue).
CLIENTS = (1, 64)
#: The goals of issue 32: tuned is never worse (within this share, the noise of a shared machine) ...
NOT_WORSE = 0.05
#: ... and better by at least this much in throughput or p99 on at least one regime.
BETTER = 0.20
DEFAULT, TUNED = "defaults", "tuned"


@dataclasses.dataclass
class SystemRun:
    #: Sync points, one a concurrency, averaged over the system's rounds.
    sync: list[SyncPoint]
    client: ClientResult


@dataclasses.dataclass
class TunedComparison:
    model: str
    regime: str
    config: dict[str, object]
    env: dict[str, str]
    reasons: list[str]
    #: Items a second the proposed workers would answer calling the model alone at the chosen batch.
    yardstick_images_per_s: float
    yardstick_call_ms: float
    runs: dict[str, SystemRun]
    load_before: list[float]
    load_after: list[float]

    def ratios(self) -> dict[str, float]:
        """Tuned against defaults: req/s (higher is better) and p99 (lower is better), by clients."""
        default, tuned = (_by_clients(self.runs[name].sync) for name in (DEFAULT, TUNED))
        figures = {}
        for clients in sorted(default):
            figures[f"rps_c{clients}"] = round(tuned[clients].rps / default[clients].rps, 2)
            figures[f"p99_c{clients}"] = round(tuned[clients].p99_ms / default[clients].p99_ms, 2)
        figures["client"] = round(self.runs[TUNED].client.images_per_s / self.runs[DEFAULT].client.images_per_s, 2)
        return figures

    def not_worse(self) -> bool:
        return all((value >= 1 - NOT_WORSE) if not key.startswith("p99") else (value <= 1 + NOT_WORSE)
                   for key, value in self.ratios().items())

    def better(self) -> bool:
        return any((value >= 1 + BETTER) if not key.startswith("p99") else (value <= 1 - BETTER)
                   for key, value in self.ratios().items())

    def summary(self) -> dict[str, object]:
        tuned = self.runs[TUNED].client
        return {"config": self.config, "env": self.env, "ratios": self.ratios(),
                "yardstick_images_per_s": round(self.yardstick_images_per_s),
                "client_images_per_s": {name: round(run.client.images_per_s) for name, run in self.runs.items()},
                "client_vs_yardstick": round(tuned.images_per_s / self.yardstick_images_per_s, 3),
                "not_worse": self.not_worse(), "better_by_20pc": self.better(),
                "load": {"before": self.load_before, "after": self.load_after}}


def compare(model: models.BenchModel, redis_url: str, images: np.ndarray, labels: np.ndarray,
            bodies: list[Path], work: Path, *, quick: bool, seconds: float) -> TunedComparison:
    load_before = list(os.getloadavg())
    cores = os.cpu_count() or 1
    api_cores = 1 if cores > 1 else 0
    plan = tune.Plan.for_host(cores, quick=quick)
    measured = tune.measure(model.model_dir, plan)
    proposal = tune.propose(measured, cores=cores, api_cores=api_cores)
    tuned_dir = tuned_copy(model.model_dir, proposal.config(), work / "tuned" / model.name)
    call_ms = measured.curves[(proposal.intra_op_threads, proposal.inter_op_threads)][proposal.max_batch_size]
    yardstick = proposal.workers * proposal.max_batch_size * 1000 / call_ms
    tuned_settings = {"workers": proposal.workers, "TF_INTRA_OP_THREADS": proposal.intra_op_threads,
                      "TF_INTER_OP_THREADS": proposal.inter_op_threads}
    order = [DEFAULT, TUNED] if quick else [DEFAULT, TUNED, TUNED, DEFAULT]
    rounds: dict[str, list[tuple[list[SyncPoint], ClientResult]]] = {DEFAULT: [], TUNED: []}
    for name in order:
        model_dir, settings = (model.model_dir, {}) if name == DEFAULT else (str(tuned_dir), tuned_settings)
        with systems.inferq(redis_url, model_dir, **settings) as base:
            wrk(base, 8, 1, bodies)  # warm up: connections, caches, first model calls
            sync = [wrk(base, clients, seconds, bodies) for clients in CLIENTS]
            rounds[name].append((sync, client_score(base, images, labels, work)))
    runs = {name: SystemRun(_mean_points([sync for sync, _ in done]), _mean_client([client for _, client in done]))
            for name, done in rounds.items()}
    return TunedComparison(model.name, model.regime, proposal.config(), proposal.env(), list(proposal.reasons),
                           yardstick, call_ms, runs, load_before, list(os.getloadavg()))


def tuned_copy(model_dir: str | Path, config: dict[str, object], target: Path) -> Path:
    """A model directory of the run's own: links to ``model_dir``'s versions, and its config.json
    (if any) with ``config`` written over it (``inferq tune --write``'s own write)."""
    source = Path(model_dir).resolve()
    target.mkdir(parents=True)
    for version in repository.versions(source):
        (target / str(version)).symlink_to(repository.version_dir(source, version), target_is_directory=True)
    for extra in (model_config.CONFIG_FILE, model_config.LABELS_FILE):
        if (source / extra).is_file():
            shutil.copyfile(source / extra, target / extra)
    tune.write_config(target, config)
    return target


def _mean_points(rounds: list[list[SyncPoint]]) -> list[SyncPoint]:
    points = []
    for same in zip(*rounds, strict=True):
        points.append(SyncPoint(same[0].concurrency, sum(p.answered for p in same),
                                statistics.mean(p.rps for p in same), statistics.mean(p.p50_ms for p in same),
                                statistics.mean(p.p99_ms for p in same), sum(p.errors for p in same),
                                sum(p.wrong_labels for p in same)))
    return points


def _mean_client(results: list[ClientResult]) -> ClientResult:
    return ClientResult(results[0].images, statistics.mean(r.seconds for r in results),
                        statistics.mean(r.images_per_s for r in results), max(r.wrong_labels for r in results),
                        sum(r.failed for r in results))


def _by_clients(points: list[SyncPoint]) -> dict[int, SyncPoint]:
    return {point.concurrency: point for point in points}


def table(comparison: TunedComparison) -> str:
    """The comparison as ``make bench`` prints it."""
    lines = [f"defaults against tuned ({comparison.model}, {comparison.regime}): tuned config.json "
             f"{json.dumps(comparison.config)}, " + " ".join(f"{k}={v}" for k, v in comparison.env.items()),
             f"{'system':<12}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"]
    for name, run in comparison.runs.items():
        for point in run.sync:
            lines.append(f"{name:<12}{point.concurrency:>8}{point.rps:>10.0f}{point.p50_ms:>9.2f}"
                         f"{point.p99_ms:>9.1f}{point.errors:>8}")
    ratios = comparison.ratios()
    lines.append("tuned / defaults: " + ", ".join(f"{key} {value:.2f}" for key, value in ratios.items()))
    tuned = comparison.runs[TUNED].client
    lines.append(f"the limit: the model alone at batch {comparison.config['max_batch_size']} on these cores, "
                 f"{comparison.env['WORKERS']} worker(s) x {comparison.config['max_batch_size']} / "
                 f"{comparison.yardstick_call_ms:.3f} ms = {comparison.yardstick_images_per_s:,.0f} images/s")
    lines.append(f"bulk scoring end to end (inferq score, {tuned.images} test images): tuned "
                 f"{tuned.images_per_s:,.0f} images/s = {tuned.images_per_s / comparison.yardstick_images_per_s:.1%} "
                 f"of the limit (defaults {comparison.runs[DEFAULT].client.images_per_s:,.0f} images/s; "
                 f"{tuned.wrong_labels} wrong labels, {tuned.failed} failed)")
    lines.append(f"goals: tuned not worse than the defaults (within {NOT_WORSE:.0%}): "
                 f"{'yes' if comparison.not_worse() else 'NO'}; better by {BETTER:.0%} or more somewhere: "
                 f"{'yes' if comparison.better() else 'no'}; load average {comparison.load_before[0]:.2f} before, "
                 f"{comparison.load_after[0]:.2f} after")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = opening.parser("bench.tuned", __doc__)
    parser.add_argument("--quick", action="store_true", help="the MLP alone, one round of each, short points")
    parser.add_argument("--model", help=f"one model: a directory of versions or one of {', '.join(models.REGIMES)}")
    parser.add_argument("--seconds", type=float, help="each sync point's length (default 3 quick, else 10)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.tuned: wrk is missing; install it with `apt-get install wrk`", file=sys.stderr)
        return 1
    setup = opening.setup("bench.tuned")
    comparisons = []
    try:
        chosen = setup.models(args.model or None, quick=args.quick)
        bodies = setup.bodies()
        with systems.redis_server(setup.work) as redis_url:
            for model in chosen:
                print(f"bench.tuned: {model.name} ({model.regime}): {model.origin}", flush=True)
                comparison = compare(model, redis_url, setup.images, setup.labels, bodies, setup.work, quick=args.quick,
                                     seconds=args.seconds or (3 if args.quick else 10))
                print(table(comparison), flush=True)
                comparisons.append(comparison)
    except models.BenchModelError as exc:
        print(f"bench.tuned: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(setup.work, ignore_errors=True)
    print(json.dumps({comparison.model: comparison.summary() for comparison in comparisons}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
