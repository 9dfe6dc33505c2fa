"""A pool process's own hard limit (scheduler/worker/watchdog.py): a run stuck in a network call
that never returns ends at its hard limit and the grace, even when nobody else ends it."""

from __future__ import annotations

import subprocess
import sys
import time

from scheduler.worker import watchdog

# The child sets Django up as a pool process has it (the package imports the task base).
STUCK_RUN = """
import django; django.setup()
import socket
from scheduler.worker import watchdog
watchdog.enable()
watchdog.arm("run-1", {limit})
ours, theirs = socket.socketpair()
ours.recv(1)  # a read nobody answers: blocked in the kernel
"""

ENDED_RUN = """
import django; django.setup()
import time
from scheduler.worker import watchdog
watchdog.enable()
watchdog.arm("run-1", {limit})
watchdog.disarm()
time.sleep({limit} + watchdog.GRACE + 0.5)
print("still here")
"""


def _run(source: str, limit: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", source.format(limit=limit)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done, time.monotonic() - started


def test_a_run_stuck_in_a_blocking_read_ends_at_its_hard_limit_and_the_grace() -> None:
    done, took = _run(STUCK_RUN, 0.5)

    assert done.returncode == watchdog.EXIT_STATUS
    assert "[watchdog] run run-1 outlived its hard time limit" in done.stderr
    assert 0.5 + watchdog.GRACE <= took < 0.5 + watchdog.GRACE + 5


def test_a_run_that_ended_disarms_it() -> None:
    done, _ = _run(ENDED_RUN, 0.2)

    assert (done.returncode, done.stdout.strip()) == (0, "still here")


def test_outside_a_pool_process_it_never_fires() -> None:
    # Not enabled (a solo pool, a caller running a task eagerly): arming does nothing.
    watchdog.arm("run-1", 0.01)
    time.sleep(0.05 + watchdog.GRACE)
