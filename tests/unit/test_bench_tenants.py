"""The two-tenant benchmark's own measuring: the open-loop latency counted from each request's due
time, and the goals as the issue states them."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from bench.open_loop import OpenLoop, OpenLoopResult
from bench.tenants import Round, TenantsResult, fair_share_goals, fair_share_table, table


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers each POST after 50 ms, one at a time: an open loop at 40/s must count its queueing."""

    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            time.sleep(0.05)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_latency_runs_from_each_requests_due_time_so_queueing_shows(slow_server, tmp_path):
    body = tmp_path / "0_7.body"
    body.write_bytes(b"x")
    with OpenLoop(slow_server, 40, [body]) as load:  # due every 25 ms, answered every 50 ms at best
        time.sleep(1.5)
    result = load.result()
    assert result.errors == 0 and result.sent >= 20
    # A closed loop would see 50 ms each; requests due faster than answered wait longer and longer.
    assert result.p99_ms > 300 and result.p50_ms > 100


def test_the_goals_are_the_issues():
    idle = OpenLoopResult(20, 100, 5.0, 10.0, 0)
    fair = TenantsResult(idle, 1000.0, {"flood": 500.0, "small": 480.0}, {"flood": 400.0, "small": 380.0},
                         OpenLoopResult(20, 100, 8.0, 24.0, 0), {"flood": 1.0, "small": 1.0})
    assert all(fair.goals().values())
    unfair = TenantsResult(idle, 1000.0, {"flood": 900.0, "small": 100.0}, {"flood": 600.0, "small": 100.0},
                           OpenLoopResult(20, 100, 8.0, 26.0, 1), {"flood": 1.0, "small": 1.0})
    goals = unfair.goals()
    assert not goals["each tenant >= 45% of bulk"] and goals["two tenants' bulk within 5% of one tenant alone"]
    assert not goals["bulk beside interactive >= 75% of alone"]
    assert not goals["interactive p99 <= 2x idle + 5 ms"] and not goals["no interactive failure"]
    assert "small 100 images/s (10%" in table(unfair)


def test_make_benchs_rounds_report_shares_and_the_spread_of_both_against_alone():
    rounds = [Round(1000.0, {"flood": 520.0, "small": 500.0}, {"flood": 1.0, "small": 1.0}),
              Round(1100.0, {"flood": 530.0, "small": 510.0}, {"flood": 1.0, "small": 0.9})]
    assert all(fair_share_goals(rounds).values())
    text = fair_share_table(rounds)
    assert "mean 0.983, spread 0.945 to 1.020" in text and "least share 49.0%" in text
    assert "| 2 | 1,100 | 1,040 | 51.0% | 49.0% | 0.945 | 100%, 90% |" in text

    skewed = [Round(1000.0, {"flood": 800.0, "small": 100.0}, {"flood": 1.0, "small": 1.0})]
    goals = fair_share_goals(skewed)
    assert not goals["each tenant >= 45% of bulk"] and not goals["two tenants' bulk within 5% of one tenant alone"]
    assert "NOT met" in fair_share_table(skewed)
