"""A run's own hard time limit, kept by the pool process that runs it.

Celery's pool enforces a run's time limits from the worker's main process, on its event loop.
When the worker loses the broker (its host cut off the network), the main process stops its
event loop to reconnect, and no limit fires until the connection comes back: a cut-off host's
runs went on, stuck in a network call, for as long as the partition lasted (~58 s on a 10 s hard
limit, issue 21). Other workers take those runs over once their claims' leases end
(scheduler/worker/deduplication.py), and the lease is only safe if no execution outlives it.

So each pool process arms a timer (SIGALRM) as a run starts, for the run's hard limit and a
grace, and disarms it when the run has ended (its result stored). If it fires, the pool process
exits at once, as the pool's own kill would have made it: the worker sees its child lost
(`task_reject_on_worker_lost` gives the message back) and another worker's copy, after the
lease, finds the run's stored state. The timer interrupts a blocked system call, so a read
that never returns ends too.

Only in a prefork pool process (`worker_process_init`): there each run has the main thread to
itself. A solo or thread pool runs tasks in the worker's own process, which must not exit.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

logger = logging.getLogger(__name__)

# Seconds after the hard limit: the pool's own kill comes first whenever it can.
GRACE = 2.0
# The exit status of a pool process that its watchdog ended.
EXIT_STATUS = 70

_armed_in_pool = False
_current: str = ""


def enable() -> None:
    """Arm the watchdog around each run of this process (a prefork pool process)."""
    global _armed_in_pool
    if not hasattr(signal, "setitimer"):
        return
    signal.signal(signal.SIGALRM, _fire)
    _armed_in_pool = True


def arm(task_id: str, hard_limit: float) -> None:
    """Start the timer for a run that may last `hard_limit` seconds."""
    global _current
    if not _armed_in_pool or hard_limit <= 0:
        return
    _current = task_id
    signal.setitimer(signal.ITIMER_REAL, hard_limit + GRACE)


def disarm() -> None:
    global _current
    if not _armed_in_pool:
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    _current = ""


def _fire(signum: int, frame: FrameType | None) -> None:
    # Written straight to stderr (the worker's log): a logging handler may hold a lock the
    # interrupted code took.
    sys.stderr.write(
        f"[watchdog] run {_current or '?'} outlived its hard time limit and the pool did not "
        f"end it (the worker's main process is cut off or stuck): pool process {os.getpid()} "
        "exits\n"
    )
    sys.stderr.flush()
    os._exit(EXIT_STATUS)
