"""A queue staff paused stays paused in a worker that starts or restarts.

Pausing broadcasts `cancel_consumer` to the workers running then (scheduler/services/queues.py);
a worker started later never heard it. So each worker reads the QueuePause rows twice:

- as it is set up (`celeryd_after_setup`, after `-Q` was applied, before its consumer starts):
  paused queues are left out of what it consumes, so not one of their messages is fetched;
- once its consumer and remote control run (`worker_ready`): a pause or a resume made between
  the two reads was broadcast while this worker could not hear it yet, so its consumers are set
  to what the rows say now.

The queues a worker was started for (`-Q`, before paused ones were left out) are kept: a resume
takes up only those (and the "no worker on a queue" alert reads them). A database that cannot be
read leaves the worker consuming every queue it was started for, with a warning: a worker that
refuses to start would drain nothing at all.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import celeryd_after_setup, worker_ready
from django.db import connection

from scheduler.observability.queues import paused_queues

logger = logging.getLogger(__name__)

# The queues this worker process was started to consume (its -Q), set as it is set up.
_started_for: set[str] | None = None


def queues_started_for() -> set[str] | None:
    """This worker's queues as started (paused ones included); None outside a worker."""
    return None if _started_for is None else set(_started_for)


def _paused_or_none() -> set[str] | None:
    try:
        return set(paused_queues())
    except Exception:
        logger.warning(
            "could not read the paused queues: consuming every queue of this worker",
            exc_info=True,
        )
        return None
    finally:
        # The worker's main process has no other use for a database connection (and its pool
        # children must not share one); one inside a transaction is its caller's.
        if not connection.in_atomic_block:
            connection.close()


@celeryd_after_setup.connect
def _leave_paused_queues_out(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    global _started_for
    queues = instance.app.amqp.queues
    _started_for = set(queues.consume_from)
    paused = _paused_or_none()
    left_out = sorted((paused or set()) & _started_for)
    if left_out:
        queues.deselect(left_out)
        logger.warning("queues paused by staff, not consumed: %s", ", ".join(left_out))


@worker_ready.connect
def _follow_pauses_made_while_starting(sender: Any = None, **kwargs: Any) -> None:
    if _started_for is None or sender is None:
        return
    paused = _paused_or_none()
    if paused is None:
        return
    consumer = sender
    consuming = {queue.name for queue in consumer.task_consumer.queues}
    for name in sorted(consuming & paused):
        consumer.cancel_task_queue(name)
        logger.warning("queue %s was paused while this worker started: not consumed", name)
    for name in sorted(_started_for - paused - consuming):
        consumer.add_task_queue(name)
        logger.info("queue %s was resumed while this worker started: consumed", name)
