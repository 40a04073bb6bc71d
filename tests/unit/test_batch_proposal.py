"""The arithmetic of ``inferq tune``'s proposal, on synthetic curves whose right answers are known."""

from __future__ import annotations

import pytest

from worker.batch_proposal import (
    MIN_WAIT_MS,
    QueueOverhead,
    candidates,
    for_p99,
    for_throughput,
    workers_for,
)

NO_QUEUE = QueueOverhead(0.0, 0.0)


def linear(fixed_ms: float, per_item_ms: float, batches=(1, 2, 4, 8, 16, 32, 64, 128, 256)) -> dict[int, float]:
    return {batch: fixed_ms + per_item_ms * batch for batch in batches}


def test_throughput_stops_at_the_batch_whose_rate_is_within_the_tolerance_of_the_best():
    # 1 ms fixed + 0.01 ms an item: b / (1 + 0.01 b) still grows at 256 (71.9 a ms, against 56.1 at 128).
    curve = linear(1.0, 0.01)
    proposal = for_throughput({(1, 1): curve}, NO_QUEUE, cores=2, api_cores=1)
    assert proposal.max_batch_size == 256
    # A curve that is flat past 16 (the call's cost all per item): 16 is enough.
    flat = {1: 0.5, 2: 0.6, 4: 0.8, 8: 1.2, 16: 2.0, 32: 4.0, 64: 8.0}
    proposal = for_throughput({(1, 1): flat}, NO_QUEUE, cores=2, api_cores=1)
    assert proposal.max_batch_size == 16
    assert proposal.host_rate == pytest.approx(16 / 2.0 * 1000)


def test_the_queues_cost_a_batch_makes_a_larger_batch_worth_it():
    flat = {1: 0.5, 2: 0.6, 4: 0.8, 8: 1.2, 16: 2.0, 32: 4.0, 64: 8.0}
    without = for_throughput({(1, 1): flat}, NO_QUEUE, cores=2, api_cores=1)
    with_queue = for_throughput({(1, 1): flat}, QueueOverhead(per_batch_ms=4.0, per_item_ms=0.0), cores=2,
                                api_cores=1)
    assert with_queue.max_batch_size > without.max_batch_size


def test_the_wait_is_a_batchs_fixed_cost_at_most_half_the_call_and_never_below_the_floor():
    flat = {1: 0.5, 2: 0.6, 4: 0.8, 8: 1.2, 16: 2.0, 32: 4.0, 64: 8.0}
    # Batch 16 chosen: the fixed cost, call(1) + the queue's a batch (0.5 + 0.3), under half the call (1.0).
    assert for_throughput({(1, 1): flat}, QueueOverhead(0.3, 0.0), cores=2,
                          api_cores=1).max_batch_wait_ms == 0.8
    # A large cost a batch: half the chosen call bounds it.
    # (batch 2 chosen: 2 / 1.6 ms against 1 / 1.5; its fixed cost 0.5 + 1.0, half its call 0.3)
    proposal = for_throughput({(1, 1): {1: 0.5, 2: 0.6}}, QueueOverhead(1.0, 0.0), cores=2, api_cores=1)
    assert (proposal.max_batch_size, proposal.max_batch_wait_ms) == (2, 0.3)
    # Weight-bound: one image costs much of what 64 do; the wait is the call of one, not half of 64's.
    weights = {1: 3.2, 16: 10.3, 64: 18.3, 256: 71.0}
    assert for_throughput({(1, 1): weights}, NO_QUEUE, cores=2, api_cores=1).max_batch_wait_ms == 3.2
    tiny = {1: 0.01, 2: 0.011}
    assert for_throughput({(1, 1): tiny}, NO_QUEUE, cores=2, api_cores=1).max_batch_wait_ms == MIN_WAIT_MS



def test_workers_fill_the_cores_left_to_them_by_their_threads():
    assert workers_for(8, 1, 1) == 7
    assert workers_for(8, 0, 2) == 4
    assert workers_for(8, 2, 0) == 1  # 0: a thread per core, one worker takes them all
    assert workers_for(2, 1, 2) == 1  # never none


def test_one_thread_a_worker_wins_where_a_second_thread_buys_less_than_a_second_worker():
    one = linear(0.2, 0.1)
    four = {batch: ms / 2 for batch, ms in one.items()}  # 4 threads: twice as fast, not four times
    proposal = for_throughput({(1, 1): one, (4, 1): four}, NO_QUEUE, cores=8, api_cores=0)
    assert (proposal.intra_op_threads, proposal.workers) == (1, 8)
    assert proposal.env() == {"WORKERS": "8", "TF_INTRA_OP_THREADS": "1", "TF_INTER_OP_THREADS": "1"}
    # Where the threads scale (four times as fast), fewer workers with more threads do as well:
    # the tie goes to the fewer threads, and a weight-bound model's better scaling wins.
    scaling = {batch: ms / 6 for batch, ms in one.items()}
    proposal = for_throughput({(1, 1): one, (4, 1): scaling}, NO_QUEUE, cores=8, api_cores=0)
    assert (proposal.intra_op_threads, proposal.workers) == (4, 2)


def test_candidates_add_the_queue_to_every_call():
    found = candidates({(1, 1): {1: 1.0, 10: 2.0}}, QueueOverhead(0.5, 0.1), cores=2, api_cores=1)
    assert [(c.batch, c.service_ms) for c in found] == [(1, pytest.approx(1.6)), (10, pytest.approx(3.5))]


def test_p99_picks_the_largest_batch_whose_wait_and_two_services_fit():
    curve = linear(1.0, 0.1, batches=(1, 4, 16, 64))  # services 1.1, 1.4, 2.6, 7.4 ms
    # 2,000 items/s on one worker: wait(b) = (b - 1) / 2 ms: 0, 1.5, 7.5, 31.5;
    # p99 = 2.2, 4.3, 12.7, 46.3 ms. Busy: 2 / (b / service) = 2.2, 0.7, 0.325, 0.23.
    proposal = for_p99({(1, 1): curve}, NO_QUEUE, p99_ms=15, rate=2000, cores=2, api_cores=1)
    assert proposal.fits
    assert proposal.max_batch_size == 16
    assert proposal.max_batch_wait_ms == 7.5
    assert proposal.p99_ms == pytest.approx(12.7)
    # A tighter target: 4 (batch 1 cannot keep up: busy 220%).
    proposal = for_p99({(1, 1): curve}, NO_QUEUE, p99_ms=5, rate=2000, cores=2, api_cores=1)
    assert (proposal.max_batch_size, proposal.fits) == (4, True)


def test_p99_that_no_batch_fits_is_said_and_the_nearest_proposed():
    curve = linear(1.0, 0.1, batches=(1, 4, 16, 64))
    proposal = for_p99({(1, 1): curve}, NO_QUEUE, p99_ms=1, rate=2000, cores=2, api_cores=1)
    assert not proposal.fits
    assert proposal.max_batch_size == 4  # the lowest p99 among the batches that keep up
    assert any("no measured batch fits" in reason for reason in proposal.reasons)


def test_p99_spreads_the_rate_over_the_workers():
    curve = linear(1.0, 0.1, batches=(1, 4, 16, 64))
    one = for_p99({(1, 1): curve}, NO_QUEUE, p99_ms=15, rate=4000, cores=2, api_cores=1)
    two = for_p99({(1, 1): curve}, NO_QUEUE, p99_ms=15, rate=4000, cores=3, api_cores=1)
    # One worker at 4,000/s: batch 16 waits 3.75 ms (p99 8.95); two at 2,000/s each: 7.5 ms (12.7).
    assert (one.workers, two.workers) == (1, 2)
    assert one.max_batch_wait_ms == 3.8 and two.max_batch_wait_ms == 7.5


def test_p99_needs_a_positive_rate_and_target():
    with pytest.raises(ValueError):
        for_p99({(1, 1): {1: 1.0}}, NO_QUEUE, p99_ms=10, rate=0, cores=1, api_cores=0)


def test_the_config_holds_the_batch_keys_only():
    proposal = for_throughput({(1, 1): {1: 1.0, 2: 1.1}}, NO_QUEUE, cores=1, api_cores=0)
    assert proposal.config() == {"max_batch_size": 2, "max_batch_wait_ms": 0.6}  # half of 1.1, under 1.0


def test_threads_past_the_cores_left_to_workers_are_not_proposed():
    one = linear(1.0, 0.1)
    two = {batch: ms / 2 for batch, ms in one.items()}  # twice as fast, but on the API's core
    proposal = for_throughput({(1, 1): one, (2, 1): two}, NO_QUEUE, cores=2, api_cores=1)
    assert proposal.intra_op_threads == 1
    # With the API elsewhere, both cores are the workers': two threads fit (or two workers).
    proposal = for_throughput({(1, 1): one, (2, 1): two}, NO_QUEUE, cores=2, api_cores=0)
    assert proposal.workers * (proposal.intra_op_threads or 2) == 2
