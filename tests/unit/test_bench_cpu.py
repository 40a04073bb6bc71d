"""The CPU meter of the benchmarks: a process that spins reads as busy, one that sleeps as idle."""

from __future__ import annotations

import subprocess
import sys

from bench.cpu import CpuMeter, cpu_seconds

# Spins for 0.6 s of CPU, says so, then idles: still there to be read when the block ends.
SPIN = ("import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
        "print('spun', flush=True)\ntime.sleep(5)\n")


def test_a_spinning_process_takes_a_core_and_a_sleeping_one_none():
    spinning = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE)
    sleeping = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(5)"],
                                stdout=subprocess.PIPE)
    try:
        assert sleeping.stdout.readline() == b"up\n"  # its start-up's CPU is spent before the block
        with CpuMeter(lambda: {"spinning": [spinning.pid], "sleeping": [sleeping.pid]}) as meter:
            assert spinning.stdout.readline() == b"spun\n"
        # The spinner's 0.6 s of CPU within the block's wall time, however long the machine made it.
        assert meter.cores["spinning"] > 0.1
        assert meter.cores["sleeping"] < 0.05
        assert set(meter.cores) == {"spinning", "sleeping"}
    finally:
        for process in (spinning, sleeping):
            process.kill()
            process.communicate()


def test_a_process_that_is_gone_reads_as_no_time():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert cpu_seconds(gone.pid) == 0.0
