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


#: A many-part upload read on one greenlet while another runs beside it, in a process patched as
#: gunicorn's gevent worker patches itself. The body is in memory, so nothing in its reading ever
#: waits: the other greenlet runs before the upload is read only where the reading gives it turns.
UPLOAD_BESIDE_A_GREENLET = """
from gevent import monkey
monkey.patch_all()
import gevent
import numpy as np
from flask import Flask, request
from api.images import offload, uploads
from api.images.upload_request import UploadRequest
from api.queue.model_lookup import Served
from bench.bodies import BOUNDARY, multipart, png
from inferq.settings import Settings
from tests.support.specs import mnist_spec

offload.TURN_S = 0  # a turn at every chance: what is checked is that there are turns, not their length
images = [png(np.full((28, 28), i, np.uint8)) for i in range(64)]  # decoded in place, not handed off
body = multipart([("image", f"{i}.png", data) for i, data in enumerate(images)])
app = Flask(__name__)
app.request_class = UploadRequest
step = ["not started"]
seen = []

def beside():
    while step[0] != "done":
        seen.append(step[0])
        gevent.sleep(0)

def upload():
    with app.test_request_context("/", method="POST", data=body,
                                  content_type=f"multipart/form-data; boundary={BOUNDARY}"):
        step[0] = "parsing"
        request.files
        step[0] = "headers and pixels"
        read = uploads.read_upload(request, Settings(), Served(mnist_spec(1), [1], False))
        step[0] = "done"
    return read

other, reading = gevent.spawn(beside), gevent.spawn(upload)
gevent.joinall([other, reading], raise_error=True)
assert reading.value.filenames == [f"{i}.png" for i in range(64)]
assert reading.value.inputs["inputdata"][:, 0].tolist() == list(range(64))
print(sorted(set(seen)))
"""


def test_a_many_part_upload_gives_the_other_greenlets_turns_while_it_is_parsed_and_decoded():
    result = subprocess.run([sys.executable, "-c", UPLOAD_BESIDE_A_GREENLET], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Without turns the other greenlet would run once, before the upload began, and once after.
    assert result.stdout.strip() == "['headers and pixels', 'not started', 'parsing']", result.stdout


def test_without_gevent_turns_are_no_op():
    turns = offload.Turns()
    for _ in range(1000):
        turns()
    assert turns.given == 0
