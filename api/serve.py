"""``python -m api.serve``: the API under the HTTP server API_SERVER names.

The one command that starts the API, for ``make up``, the benchmark, the tests and the container:
gunicorn replaces this process (``config/gunicorn.conf.py``), granian is served from it
(``api/granian_server.py``).
"""

from __future__ import annotations

import os
import sys

from inferq.settings import Settings

GUNICORN = ["-m", "gunicorn", "-c", "config/gunicorn.conf.py", "api.app:create_app()"]


def main() -> None:
    settings = Settings.from_env()
    if settings.api_server == "gunicorn":
        os.execv(sys.executable, [sys.executable, *GUNICORN])
    from api import granian_server

    granian_server.serve(settings)


if __name__ == "__main__":
    main()
