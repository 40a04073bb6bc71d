"""gunicorn settings for the API (``gunicorn -c config/gunicorn.conf.py 'api.app:create_app()'``, which
``python -m api.serve`` runs when API_SERVER is gunicorn; api/granian_server.py is granian's).

Processes, worker class, threads and connections come from API_PROCESSES, API_WORKER_CLASS,
API_THREADS and API_CONNECTIONS, the port from PORT: the same settings object the app reads. A sync
request spends its time waiting for its answer, so greenlets (gevent) or threads carry the
concurrency and two processes use both cores of a small machine. gevent is the default: gthread
hands every request from its event loop to a pool thread and back, which cost a fifth of the
API's throughput here (README, Benchmarks).
"""

import gc
import os
import shutil
import tempfile

from inferq.settings import Settings

_settings = Settings.from_env()

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.api_processes
threads = _settings.api_threads
worker_class = _settings.api_worker_class
worker_connections = _settings.api_connections
# A listening socket per process, among which the kernel spreads new connections. On one shared
# socket each process accepts as fast as it can: under 64 keep-alive clients one held 53 of them
# and its core was the bottleneck while the other idled.
reuse_port = True
# Requests in flight get this long to finish on SIGTERM; sync ones may wait SYNC_TIMEOUT_S.
graceful_timeout = int(_settings.sync_timeout_s) + 5
timeout = int(_settings.sync_timeout_s) + 30
keepalive = 5
# The longest request line gunicorn takes (the default is 4094): longer ones get gunicorn's own
# HTML error, not the app's JSON.
limit_request_line = 8190
# gunicorn's control socket sits at one path per user: two servers on a host would collide.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
# The API's metrics are summed across processes from files here (prometheus_client multiprocess).
# prometheus_client picks in-memory or file-backed values when it is first imported, so it must
# not be imported before the variable is set.
_metrics_dir = tempfile.mkdtemp(prefix="inferq-metrics-")
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}"]
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)


def post_worker_init(worker):
    # Everything loaded so far (Flask, Celery, kombu, numpy, Pillow) lives as long as the process:
    # out of the collector's sight, full collections under load stop walking it (docs/benchmarks.md).
    gc.freeze()
