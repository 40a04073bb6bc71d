"""The mixed benchmark's own measuring: how long the bulk queue stood empty, and its table."""

from __future__ import annotations

import fakeredis

from bench import systems
from bench.load import SyncPoint
from bench.mixed import EmptyQueueShare, MixedResult, table
from inferq import keys
from inferq.priorities import BULK
from tests.support.waiting import wait_for

QUEUED_BULK = keys.queued_images(systems.SERVED_MODEL, BULK)


def test_the_share_of_samples_that_found_the_bulk_queue_empty():
    client = fakeredis.FakeRedis()
    with EmptyQueueShare(client) as share:
        wait_for(lambda: len(share.samples) >= 5, 10, "samples of the empty queue")
        client.set(QUEUED_BULK, 1024)
        wait_for(lambda: share.samples[-1] == 1024 and share.samples.count(1024) >= 5, 10, "samples of a full one")
    empty = share.samples.count(0)
    assert 5 <= empty < len(share.samples)
    assert share.fraction == empty / len(share.samples)
    assert 0 < share.fraction < 1


def test_a_queue_never_empty_reads_as_never_empty():
    client = fakeredis.FakeRedis()
    client.set(QUEUED_BULK, 1)
    with EmptyQueueShare(client) as share:
        wait_for(lambda: len(share.samples) >= 3, 10, "three samples")
    assert share.fraction == 0.0


def test_the_table_says_how_long_the_queue_stood_empty_in_each_bulk_measurement():
    point = SyncPoint(concurrency=16, answered=100, rps=10.0, p50_ms=5.0, p99_ms=9.0, errors=0, wrong_labels=0)
    result = MixedResult(point, 1000.0, point, 900.0, point, 950.0, bulk_refusals=3,
                         bulk_queue_empty={"bulk alone": 0.33, "mixed, with priorities": 0.0})
    shown = table(result)
    assert "Bulk queue empty: bulk alone 33%, mixed, with priorities 0% of the time." in shown
    assert "bulk at least 80% of alone: met" in shown


def test_the_open_loop_yardstick_has_goals_of_its_own():
    from bench.open_loop import OpenLoopResult

    point = SyncPoint(concurrency=16, answered=100, rps=10.0, p50_ms=5.0, p99_ms=9.0, errors=0, wrong_labels=0)
    idle, beside = OpenLoopResult(20, 200, 4.0, 10.0, 0), OpenLoopResult(20, 200, 6.0, 26.0, 0)
    result = MixedResult(point, 1000.0, point, 900.0, point, 950.0, bulk_refusals=0, open_loop_idle=idle,
                         open_loop_mixed=beside, open_loop_bulk_images_per_s=800.0)
    goals = result.goals()
    assert not goals["open-loop interactive p99 at most 2x idle + 5 ms"]  # 26 > 2 x 10 + 5
    assert goals["no open-loop interactive failure"]
    assert goals["bulk beside open-loop interactive at least 75% of alone"]
    assert "| open loop beside bulk, 20/s | 20 | 6.0 | 26.0 | 0 | 800 |" in table(result)
    without = MixedResult(point, 1000.0, point, 900.0, point, 950.0, bulk_refusals=0)
    assert "no open-loop interactive failure" not in without.goals()


def test_a_png_bulk_job_is_a_part_an_image_and_an_idx_job_one_file():
    import numpy as np
    from werkzeug.formparser import parse_form_data
    from werkzeug.test import EnvironBuilder

    from bench.bodies import BOUNDARY
    from bench.mixed import BulkProducer

    images = np.zeros((5, 28, 28), np.uint8)

    def fields(producer: BulkProducer) -> list[str]:
        body = producer._body
        environ = EnvironBuilder(method="POST", data=body,
                                 content_type=f"multipart/form-data; boundary={BOUNDARY}").get_environ()
        return [name for name, _ in parse_form_data(environ)[2].items(multi=True)]

    assert fields(BulkProducer("http://127.0.0.1:1", images, 0, pngs=True)) == ["image"] * 5
    assert fields(BulkProducer("http://127.0.0.1:1", images, 0)) == ["images"]
