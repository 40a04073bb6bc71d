"""Everything at once, as a client sees it: honest sync and bulk load over HTTP while hostile uploads
arrive, workers are SIGKILLed, the API is SIGKILLed and Redis is restarted on its data.

The promise checked at the end: every job answered 202 is done, once, with an answer per image, the
right ones; no honest request failed outside the windows in which the API was dead or Redis was
down; no hostile request got a 5xx; nothing is left counted as queued; and the service still takes
and answers new work. Every failure is reported in one message of counts and the first offenders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import io
import json
import queue
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import numpy as np
from PIL import Image

from bench.bodies import MULTIPART, multipart
from inferq import keys, priorities
from inferq.repository import newest_version
from inferq.settings import Settings
from launcher.processes import free_port
from tests.conftest import png_bytes
from tests.support.go_server_model import go_server_predict
from tests.support.http_load import Answer, HttpLoad
from tests.support.processes import ApiProcess, RedisProcess, WorkerProcess, worker_env
from tests.support.waiting import wait_for

QUEUE = "chaos"
MODEL = "mnist"
#: What the test pushes where only the API's messages belong: none of it is a message a worker can read.
GARBAGE = (b"\x00\xffnot json", b"{}", b'{"body": "%%%", "headers": {}, "properties": {}}')
#: Honest sync requests cycle through these test images (one PNG each), bulk jobs through the
#: BULK_FILES files of BULK_IMAGES images before them.
SYNC_FIRST, SYNC_COUNT = 5000, 200
BULK_IMAGES, BULK_FILES = 256, 8
#: Bounds on the honest bulk load, so that the backlog stays far below any queue limit.
BULK_MAX_JOBS = 120
#: Reported offenders per check.
SHOWN = 5
JSON = {"Content-Type": "application/json"}


@dataclasses.dataclass
class Window:
    """A stretch of time in which failures are the test's doing, not the service's."""
    name: str
    start: float
    end: float = float("inf")

    def covers(self, sent: float, at: float) -> bool:
        return sent <= self.end and at >= self.start


@dataclasses.dataclass(frozen=True)
class HostileCase:
    name: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    #: Statuses besides 4xx that are a right answer (an empty answer to zero items).
    also_fine: tuple[int, ...] = ()
    #: Sent in these rounds only (every round when empty).
    rounds: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class HostileAnswer:
    case: str
    status: int
    sent: float
    at: float
    body: bytes


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_header_declaring(shape: tuple[int, ...]) -> bytes:
    """A .npy file whose header claims ``shape`` of uint8, followed by one image's bytes."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(784)


def many_big_pngs(limit_bytes: int, max_images: int) -> bytes:
    """A multipart body of as many 4096x4096 PNGs (each ~16 KB, mostly black) as fit ``limit_bytes``."""
    pixels = np.zeros((4096, 4096), np.uint8)
    pixels[1000:3000, 1800:2300] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    png = buffer.getvalue()
    part = len(multipart([("image", "big-0000.png", png)])) - len(multipart([]))
    count = min(max_images, (limit_bytes - len(multipart([]))) // part)
    return multipart([("image", f"big-{i:04d}.png", png) for i in range(count)])


def hostile_cases(settings: Settings) -> list[HostileCase]:
    kserve = f"/v2/models/{MODEL}/infer"
    return [
        HostileCase("zero-image .npy job", "POST", "/jobs",
                    multipart([("images", "empty.npy", npy(np.zeros((0, 28, 28), np.uint8)))]), MULTIPART,
                    also_fine=(202,)),
        HostileCase("zero-image IDX job", "POST", "/jobs",
                    multipart([("images", "empty.idx", struct.pack(">IIII", 0x803, 0, 28, 28))]), MULTIPART,
                    also_fine=(202,)),
        HostileCase("zero-image .npy sync", "POST", "/recognize",
                    multipart([("images", "empty.npy", npy(np.zeros((0, 28, 28), np.uint8)))]), MULTIPART,
                    also_fine=(200,)),
        HostileCase(".npy declaring (2**40, 28, 28)", "POST", "/jobs",
                    multipart([("images", "huge.npy", npy_header_declaring((2**40, 28, 28)))]), MULTIPART),
        HostileCase("KServe BYTES [1, 10**13]", "POST", kserve,
                    json.dumps({"inputs": [{"name": "inputdata", "shape": [1, 10**13], "datatype": "BYTES",
                                            "data": ["x"]}]}).encode(), JSON),
        HostileCase("KServe zero rows", "POST", kserve,
                    json.dumps({"inputs": [{"name": "inputdata", "shape": [0, 784], "datatype": "FP32",
                                            "data": []}]}).encode(), JSON, also_fine=(200,)),
        HostileCase("16 MB of 4096x4096 PNGs", "POST", "/recognize",
                    many_big_pngs(settings.max_request_bytes, settings.max_images_per_request), MULTIPART,
                    rounds=(0,)),
    ]


class Hostile:
    """A thread sending every hostile case of a round when asked to (``send``); ``wait_idle`` waits for
    the rounds asked for to be answered, so that none is in flight when the test kills something."""

    def __init__(self, base_url: str, cases: list[HostileCase], timeout_s: float = 75.0) -> None:
        self.host, port = base_url.removeprefix("http://").split(":")
        self.port = int(port)
        self.cases = cases
        self.timeout_s = timeout_s
        self.answers: list[HostileAnswer] = []
        self._rounds: queue.Queue[int | None] = queue.Queue()
        self._asked = self._done = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def send(self, round_: int) -> None:
        self._asked += 1
        self._rounds.put(round_)

    def idle(self) -> bool:
        return self._done == self._asked

    def stop(self) -> None:
        self._rounds.put(None)
        self._thread.join(self.timeout_s + 5)

    def _run(self) -> None:
        while (round_ := self._rounds.get()) is not None:
            for case in self.cases:
                if not case.rounds or round_ in case.rounds:
                    self.answers.append(self._send(case))
            self._done += 1

    def _send(self, case: HostileCase) -> HostileAnswer:
        sent = time.monotonic()
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            # The server may answer before it has read the whole body.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.request(case.method, case.path, body=case.body, headers=case.headers)
            response = connection.getresponse()
            return HostileAnswer(case.name, response.status, sent, time.monotonic(), response.read())
        except (OSError, http.client.HTTPException):
            return HostileAnswer(case.name, 0, sent, time.monotonic(), b"")
        finally:
            connection.close()


def http_json(base_url: str, method: str, path: str, body: bytes | None = None,
              headers: dict[str, str] | None = None, timeout_s: float = 10) -> tuple[int, dict | None]:
    """The status and JSON body of one request; status 0 when no answer came."""
    request = urllib.request.Request(base_url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, None
    except (OSError, ValueError):
        return 0, None


def ready(base_url: str) -> bool:
    return http_json(base_url, "GET", "/readyz", timeout_s=2)[0] == 200


def settle(condition: Callable[[], object], timeout_s: float, what: str, problems: list[str]) -> bool:
    """wait_for, noting a timeout as a problem rather than stopping the checks that follow."""
    try:
        wait_for(condition, timeout_s, what, interval_s=0.25)
        return True
    except AssertionError as exc:
        problems.append(str(exc))
        return False


def first(items: list, n: int = SHOWN) -> str:
    return ", ".join(map(str, items[:n])) + (" ..." if len(items) > n else "")


class Jobs:
    """Jobs answered 202, polled over HTTP until final: each one's first final record is kept, to be
    compared with its record at the end (a job run twice must not change its answer)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.expected: dict[str, np.ndarray] = {}  # job id -> the labels its images must get
        self.final: dict[str, dict] = {}
        self.missing: dict[str, int] = {}  # job id -> the status GET answered while not final

    def add(self, job_id: str, labels: np.ndarray) -> None:
        self.expected[job_id] = labels

    def pending(self) -> list[str]:
        return [job_id for job_id in self.expected if job_id not in self.final]

    def poll(self) -> bool:
        for job_id in self.pending():
            status, record = http_json(self.base_url, "GET", f"/jobs/{job_id}")
            if status == 200 and record["status"] in ("done", "failed", "expired"):
                self.final[job_id] = record
                self.missing.pop(job_id, None)
            elif status != 200:
                self.missing[job_id] = status
        return not self.pending()

    def problems(self) -> list[str]:
        wrong_status, wrong_count, wrong_labels, changed = [], [], [], []
        for job_id, record in self.final.items():
            expected = self.expected[job_id]
            if record["status"] != "done":
                wrong_status.append(f"{job_id} {record['status']} ({str(record.get('error'))[:80]})")
                continue
            results = (record.get("result") or {}).get("results") or []
            if len(results) != len(expected) or record.get("images") != len(expected):
                wrong_count.append(f"{job_id} ({len(results)} answers, {record.get('images')} images, "
                                   f"{len(expected)} sent)")
                continue
            labels = [item["labels"][0] for item in results]
            if labels != expected.tolist():
                wrong = sum(a != b for a, b in zip(labels, expected.tolist(), strict=True))
                wrong_labels.append(f"{job_id} ({wrong} of {len(expected)})")
            status, again = http_json(self.base_url, "GET", f"/jobs/{job_id}")
            again_labels = [item["labels"][0] for item in ((again or {}).get("result") or {}).get("results") or []]
            if (status != 200 or again["status"] != "done" or again["finished_at"] != record["finished_at"]
                    or again_labels != labels):
                changed.append(job_id)
        problems = []
        if self.pending():
            shown = [f"{job_id} (GET {self.missing.get(job_id, 200)})" for job_id in self.pending()]
            problems.append(f"{len(self.pending())} of {len(self.expected)} accepted jobs never ended: "
                            f"{first(shown)}")
        for what, found in (("ended other than done", wrong_status), ("have not an answer per image", wrong_count),
                            ("answered wrong labels", wrong_labels), ("changed after ending", changed)):
            if found:
                problems.append(f"{len(found)} accepted jobs {what}: {first(found)}")
        return problems


def honest_failures(answers: list[Answer], windows: list[Window]) -> tuple[list[Answer], list[Answer]]:
    """The honest requests not answered 200/202: (inside a window, outside every window)."""
    failed = [answer for answer in answers if answer.status not in (200, 202)]
    inside = [answer for answer in failed if any(w.covers(answer.sent, answer.at) for w in windows)]
    return inside, [answer for answer in failed if answer not in inside]


def describe(answer: Answer, t0: float) -> str:
    error = (answer.body or {}).get("error") if isinstance(answer.body, dict) else None
    return f"{answer.kind} {answer.status} at +{answer.sent - t0:.1f}s..+{answer.at - t0:.1f}s {str(error or '')[:60]}"


def queued_counters(client) -> dict[str, int]:
    return {key.decode(): int(client.get(key) or 0) for key in client.scan_iter(f"{keys.PREFIX}:queued-images:*")}


def test_nothing_accepted_is_lost_whatever_arrives_and_whatever_dies(tmp_path, trained_model_dir, mnist_test,
                                                                     capsys):
    images, truth = mnist_test
    version = newest_version(trained_model_dir)
    expected = go_server_predict(trained_model_dir / str(version), images.reshape(-1, 784))
    sync_uploads = [[("image", f"{i}.png", png_bytes(images[i]))] for i in range(SYNC_FIRST, SYNC_FIRST + SYNC_COUNT)]
    bulk_uploads = [[("images", f"bulk-{k}.npy", npy(images[k * BULK_IMAGES:(k + 1) * BULK_IMAGES]))]
                    for k in range(BULK_FILES)]

    (tmp_path / "redis").mkdir()
    redis_server = RedisProcess(free_port(), tmp_path / "redis")
    env = worker_env(redis_server.url, trained_model_dir, QUEUE, visibility_timeout_s=3)
    settings = Settings.from_env(env)
    cases = hostile_cases(settings)
    port = free_port()
    workers: list[WorkerProcess] = []
    api: ApiProcess | None = None
    load: HttpLoad | None = None
    hostile: Hostile | None = None
    windows: list[Window] = []
    t0 = time.monotonic()

    def start_worker(name: str) -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker-{name}.log")
        workers.append(worker)
        return worker

    problems: list[str] = []
    jobs = Jobs(f"http://127.0.0.1:{port}")

    def add_accepted(jobs: Jobs, answers: list[Answer], hostile_answers: list[HostileAnswer]) -> None:
        for answer in answers:
            if answer.kind == "async" and answer.status == 202:
                k = answer.upload
                jobs.add(answer.body["job_id"], expected[k * BULK_IMAGES:(k + 1) * BULK_IMAGES])
        for answer in hostile_answers:
            if answer.status == 202:
                jobs.add(json.loads(answer.body)["job_id"], expected[:0])

    def progress(step: str, sync: int = 0, bulk: int = 0, timeout_s: float = 40) -> None:
        """Waits for ``sync`` more honest answers and ``bulk`` more accepted jobs; a stall is noted and
        the run goes on, so that one hole does not hide the others."""
        want_sync, want_bulk = load.count("sync", 200) + sync, load.count("async", 202) + bulk
        settle(lambda: load.count("sync", 200) >= want_sync and load.count("async", 202) >= want_bulk,
               timeout_s, f"{sync} more honest sync answers and {bulk} more accepted jobs {step}", problems)

    try:
        redis_server.start()
        live = [start_worker("0a"), start_worker("1a")]
        api = ApiProcess(env, tmp_path / "api-a.log", port, processes=2)
        for worker in live:
            worker.wait_serving()
        wait_for(lambda: ready(api.base_url), 30, "the API to be ready")

        load = HttpLoad(api.base_url, uploads={"sync": sync_uploads, "async": bulk_uploads},
                        sync_threads=2, async_threads=1, timeout_s=60,
                        pause_s={"sync": 0.02, "async": 1.0}, max_requests={"async": BULK_MAX_JOBS})
        hostile = Hostile(api.base_url, cases)
        with load, hostile:
            progress("at the start", sync=20, bulk=2)
            hostile.send(0)
            progress("while the first hostile requests arrive", sync=10)

            live[0].kill()
            live[0] = start_worker("0b")
            hostile.send(1)
            progress("after a worker was killed", sync=10)

            settle(hostile.idle, 90, "the hostile requests to be answered before the API is killed", problems)
            window = Window("API killed", time.monotonic())
            windows.append(window)
            api.kill()
            api = ApiProcess(env, tmp_path / "api-b.log", port, processes=2)
            wait_for(lambda: ready(api.base_url), 30, "the restarted API to be ready")
            window.end = time.monotonic()

            live[0].wait_serving()
            progress("after the API was killed", sync=10, bulk=1)

            settle(hostile.idle, 90, "the hostile requests to be answered before Redis is restarted", problems)
            window = Window("Redis restarted", time.monotonic())
            windows.append(window)
            assert redis_server.stop() == 0
            redis_server.start()
            wait_for(lambda: ready(api.base_url), 30, "the API to be ready after Redis came back")
            window.end = time.monotonic()
            hostile.send(2)
            progress("after Redis was restarted", sync=10, bulk=1)

            live[1].kill()
            live[1] = start_worker("1b")
            live[1].wait_serving()
            progress("after the second worker was killed", sync=10, bulk=1)
            settle(hostile.idle, 90, "the hostile requests to be answered", problems)

            # Before the garbage, so that what it does is told apart from what came before.
            add_accepted(jobs, load.snapshot(), hostile.answers)
            settle(jobs.poll, 30, f"the {len(jobs.expected)} jobs accepted before the garbage to end", problems)

            # Garbage where only the API's messages belong: a worker must neither die nor stall on it.
            for name in priorities.queues(settings.model_queue(MODEL)):
                for garbage in GARBAGE:
                    redis_server.client.lpush(name, garbage)
                    redis_server.client.lpush(f"{name}:bell", 1)
            progress("after garbage was queued", sync=20, bulk=1)
        answers = load.snapshot()

        add_accepted(jobs, answers, hostile.answers)
        settle(jobs.poll, 90, f"the {len(jobs.expected)} accepted jobs to end", problems)
        problems += jobs.problems()

        inside, outside = honest_failures(answers, windows)
        if outside:
            problems.append(f"{len(outside)} honest requests failed outside the API-kill and Redis-restart "
                            f"windows: {first([describe(a, t0) for a in outside])}")
        sync_ok = [a for a in answers if a.kind == "sync" and a.status == 200]
        mislabelled = [a for a in sync_ok if a.body["labels"][0] != expected[SYNC_FIRST + a.upload]]
        if mislabelled:
            problems.append(f"{len(mislabelled)} of {len(sync_ok)} honest sync answers have a wrong label: "
                            f"{first([(SYNC_FIRST + a.upload, a.body['labels']) for a in mislabelled])}")

        hostile_bad = []
        for answer in hostile.answers:
            case = next(c for c in cases if c.name == answer.case)
            if not (400 <= answer.status < 500 or answer.status in case.also_fine):
                hostile_bad.append(f"{answer.case}: {answer.status} {answer.body[:80]!r}")
        if hostile_bad:
            problems.append(f"{len(hostile_bad)} of {len(hostile.answers)} hostile requests were not refused with "
                            f"a 4xx: {first(hostile_bad)}")

        client = redis_server.client

        def drained() -> bool:
            status, body = http_json(api.base_url, "GET", "/status")
            return (not any(queued_counters(client).values()) and status == 200 and body["queued_images"] == 0
                    and not any(client.llen(q) for q in priorities.queues(settings.model_queue(MODEL))))
        if not settle(drained, 20, "the queued-images counters and the queues to be empty", problems):
            problems.append(f"left queued: counters {queued_counters(client)}, queues "
                            f"{ {q: client.llen(q) for q in priorities.queues(settings.model_queue(MODEL))} }")

        # Each piece of garbage is set aside where an operator finds it, none run, none lost.
        garbage_sent = len(GARBAGE) * len(priorities.queues(settings.model_queue(MODEL)))
        status, body = http_json(api.base_url, "GET", "/status")
        if status != 200 or body.get("dead_letters") != garbage_sent:
            problems.append(f"/status counts {body.get('dead_letters') if status == 200 else status} dead letters "
                            f"for the {garbage_sent} pieces of garbage queued")

        dead = [worker.log_path.name for worker in live if worker.process.poll() is not None]
        if dead:
            problems.append(f"workers died without being killed: {dead}")

        last = list(range(9000, 9003))
        status, body = http_json(api.base_url, "POST", "/jobs", multipart(
            [("image", f"{i}.png", png_bytes(images[i])) for i in last]), MULTIPART)
        if status != 202:
            problems.append(f"a new job after it all was answered {status}: {str(body)[:200]}")
        else:
            after = Jobs(api.base_url)
            after.add(body["job_id"], expected[last])
            settle(after.poll, 45, "the new job to end", problems)
            problems += [f"the new job: {problem}" for problem in after.problems()]

        hostile_by_status: dict[str, dict[int, int]] = {}
        for answer in hostile.answers:
            counts = hostile_by_status.setdefault(answer.case, {})
            counts[answer.status] = counts.get(answer.status, 0) + 1
        sync_failed = sum(a.kind == "sync" and a.status != 200 for a in answers)
        summary = (f"chaos: {time.monotonic() - t0:.0f} s; honest sync ok {len(sync_ok)} failed {sync_failed} "
                   f"(right by the truth: {sum(a.body['labels'][0] == truth[SYNC_FIRST + a.upload] for a in sync_ok)});"
                   f" bulk jobs accepted {sum(a.kind == 'async' and a.status == 202 for a in answers)} "
                   f"refused {sum(a.kind == 'async' and a.status != 202 for a in answers)} "
                   f"done {sum(r['status'] == 'done' for r in jobs.final.values())}; "
                   f"honest failures in windows {len(inside)}, outside {len(outside)}; "
                   f"windows {', '.join(f'{w.name} +{w.start - t0:.1f}..+{w.end - t0:.1f}s' for w in windows)}; "
                   f"hostile by status {hostile_by_status}")
        with capsys.disabled():
            print("\n" + summary)
        assert not problems, "\n".join([summary, *problems])
    finally:
        if hostile is not None:
            hostile.stop()
        if load is not None:
            load.stop()
        if api is not None and api.process.poll() is None:
            api.kill()
        for worker in workers:
            if worker.process.poll() is None:
                worker.kill()
        redis_server.stop()

