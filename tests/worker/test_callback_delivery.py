"""One callback POST: a 2xx delivers; a redirect is not followed; no answer in time is a failure."""

import http.server
import threading

import pytest

from launcher.processes import free_port
from worker.callback_delivery import post


@pytest.fixture
def server():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            seen.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            status = {"/ok": 204, "/moved": 302, "/broken": 503}[self.path.split("?")[0]]
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "http://169.254.169.254/")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"nope")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_a_2xx_delivers_and_anything_else_says_what_went_wrong(server):
    url, seen = server
    assert post(f"{url}/ok?run=1", b"{}", {"content-type": "application/json"}, 2) is None
    assert seen == [("/ok?run=1", b"{}")]
    assert post(f"{url}/moved", b"{}", {}, 2) == "HTTP 302: redirects are not followed"
    assert len(seen) == 2  # the redirect's target was never asked
    assert post(f"{url}/broken", b"{}", {}, 2) == "HTTP 503: nope"


def test_a_receiver_that_is_not_there_is_a_failure():
    assert "ConnectionRefusedError" in post(f"http://127.0.0.1:{free_port()}/x", b"{}", {}, 2)


def test_a_receiver_that_does_not_answer_in_time_is_a_failure():
    silent = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # never served
    try:
        error = post(f"http://127.0.0.1:{silent.server_address[1]}/x", b"{}", {}, 0.3)
    finally:
        silent.server_close()
    assert "timed out" in error
