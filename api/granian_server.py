"""The API under granian (API_SERVER=granian): what config/gunicorn.conf.py is to gunicorn.

granian parses HTTP in Rust, outside the GIL, and hands each request to one of API_THREADS
blocking threads in each of its API_PROCESSES worker processes, which run the Flask app through
its WSGI interface. A sync request holds its thread while it waits for its answer.

What gunicorn's configuration does, done here:

- Each worker binds its own socket with SO_REUSEPORT (granian does so on Linux by itself), among
  which the kernel spreads new connections.
- On SIGTERM the workers stop accepting and finish the requests in flight, sync ones included
  (SYNC_TIMEOUT_S); a worker still busy after that is killed.
- A worker that dies is started again, as gunicorn's arbiter does.
- The API's metrics are summed across the workers from files in a directory of this server's
  (prometheus_client's multiprocess mode), removed when it stops.
- Each worker freezes the objects its start-up loaded, out of the collector's sight.

What granian answers itself, without the app (so not in the app's JSON), each with no body: a head
past its buffer (``HTTP1Settings.max_buffer_size``, a few hundred kilobytes) or of more than 100
headers, 431; a URI of 64 KiB or more, 414; what is not HTTP/1, 400. gunicorn answers the same
statuses with an HTML page, and at smaller sizes (8 KiB a line or header). A head is read by Rust
code, so a client that trickles it holds no thread, and is dropped after HEADER_READ_TIMEOUT_MS.
Bodies are the app's to limit: MAX_REQUEST_BYTES (Flask's MAX_CONTENT_LENGTH) as the body is read.

granian warns at start that API_THREADS threads a process are many for few cores: they spend their
time waiting for answers, not running. It also copies the process's environment (REDIS_URL, API_KEY)
into every request's WSGI environ: nothing may echo ``request.environ`` to a client.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import tempfile

from flask import Flask

from inferq.settings import Settings

#: granian's target: builds the app in each worker.
TARGET = "api.granian_server:frozen_app"
HEADER_READ_TIMEOUT_MS = 5_000


def serve(settings: Settings) -> None:
    """Run the API until SIGTERM or SIGINT; every request answered before this returns."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    metrics_dir = tempfile.mkdtemp(prefix="inferq-metrics-")
    # prometheus_client picks in-memory or file-backed values when it is first imported, and this
    # process imported it with the ``api`` package on its way here: forked workers would inherit the
    # in-memory kind. Spawned ones import it afresh, with the variable set.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    multiprocessing.set_start_method("spawn", force=True)
    server = Granian(
        TARGET,
        factory=True,
        interface=Interfaces.WSGI,
        # HTTP/1.1 alone, as under gunicorn: no HTTP/2 surface for clients to probe.
        http=HTTPModes.http1,
        # A head not complete in this long closes its connection, as gunicorn's keepalive does
        # (granian's default waits six times longer).
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_READ_TIMEOUT_MS),
        websockets=False,
        address="0.0.0.0",
        port=settings.port,
        workers=settings.api_processes,
        blocking_threads=settings.api_threads,
        backpressure=settings.api_connections,
        respawn_failed_workers=True,
        # As gunicorn's graceful_timeout: sync requests in flight may wait SYNC_TIMEOUT_S.
        workers_kill_timeout=int(settings.sync_timeout_s) + 5,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
    )
    try:
        server.serve()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def frozen_app() -> Flask:
    """The app, built in a worker, with what its start-up loaded frozen (as gunicorn's post_worker_init)."""
    from api.app import create_app

    app = create_app()
    # Everything loaded so far lives as long as the process: out of the collector's sight, full
    # collections under load stop walking it (docs/benchmarks.md).
    gc.freeze()
    return app
