"""The module the Celery command line loads: ``celery -A worker.main worker``.

It builds the worker app from the environment's settings, the one place the worker reads them.
"""

from inferq.settings import Settings
from worker.app import create_worker_app

app = create_worker_app(Settings.from_env())
