"""api.images.offload: CPU-heavy work runs off a gevent process's hub, and on the caller's thread elsewhere."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from api.images import offload

REPO = Path(__file__).resolve().parents[2]

#: Run in a process of its own, patched as gunicorn's gevent worker patches itself: the work waits
#: for a greenlet to run, which it can only do while the work is off the hub.
UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import threading, time, gevent
from api.images import offload

seen = []
def work():
    deadline = time.perf_counter() + 10
    while not seen and time.perf_counter() < deadline:
        pass  # busy, holding the GIL as NumPy code would between its releases
    return bool(seen), threading.get_ident()

ticker = gevent.spawn(seen.append, "a greenlet ran")
ran_meanwhile, worked_on = offload.run(work)
assert offload.under_gevent()
assert ran_meanwhile, "no greenlet ran while the work did: it ran on the hub"
assert worked_on != threading.get_ident()
try:
    offload.run(lambda: 1 / 0)
except ZeroDivisionError:
    print("ok")
"""


def test_under_gevent_the_work_runs_on_a_native_thread_while_greenlets_run():
    result = subprocess.run([sys.executable, "-c", UNDER_GEVENT], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_without_gevent_the_work_runs_on_the_callers_thread():
    assert not offload.under_gevent()
    assert offload.run(threading.get_ident) == threading.get_ident()


def test_small_images_are_decoded_in_place_and_large_ones_handed_off(client, monkeypatch, digit_104):
    import io

    import numpy as np

    from api.images import uploads
    from tests.conftest import png_bytes

    handed: list[int] = []

    def counted(work, *args):
        handed.append(len(args[0]))
        return work(*args)

    monkeypatch.setattr(offload, "run", counted)
    few = [("a.png", digit_104)] * (uploads.INLINE_PIXELS // (28 * 28))  # 83 digits: within the bound
    response = client.post("/recognize", data={"image": [(io.BytesIO(data), name) for name, data in few]})
    assert response.status_code == 200 and handed == []
    large = png_bytes(np.zeros((300, 300), np.uint8))  # 90,000 pixels alone: past it
    response = client.post("/recognize", data={"image": [(io.BytesIO(large), "large.png"),
                                                         (io.BytesIO(digit_104), "b.png")]})
    assert response.status_code == 200 and handed == [2]
