"""Celery signal receivers: each translates one worker or task event into one call of our code."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import (
    beat_init,
    before_task_publish,
    heartbeat_sent,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_revoked,
    task_success,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.db import close_old_connections, connections

from scheduler import protocol
from scheduler.live.events import defer_event_writes, event_record_safely
from scheduler.live.publisher import publisher
from scheduler.observability.worker_heartbeats import (
    forget_worker,
    record_worker_queues,
    record_worker_seen,
)
from scheduler.worker.dead_letters import dead_letter_keep
from scheduler.worker.overlap import overlap_rescue, stop_reason_or_none
from scheduler.worker.result_backend import defer_started

logger = logging.getLogger(__name__)

# task id -> monotonic start, in the process that runs the task; popped when it finishes.
_started: dict[str, float] = {}
# Database connections are checked after a run at most this often (seconds), unless in doubt.
_RECYCLE_INTERVAL = 1.0
_next_recycle = 0.0


@worker_init.connect
@worker_process_init.connect
@beat_init.connect
def _defer_event_writes(**kwargs: Any) -> None:
    # Task events are on the hot path of every run: written in batches by the publisher.
    defer_event_writes()


@worker_init.connect
@worker_process_init.connect
def _deliver_events_inline(**kwargs: Any) -> None:
    # The thread that records a run's end sends it too: cheaper than waking the publisher
    # thread for every run (scheduler/live/publisher.py). And a short run's STARTED row is written
    # with its end, once (scheduler/worker/result_backend.py).
    publisher().deliver_inline()
    defer_started()


@worker_process_shutdown.connect
def _flush_events(**kwargs: Any) -> None:
    publisher().flush(timeout=5.0)


@task_postrun.connect
def _recycle_database_connections(task: Any = None, **kwargs: Any) -> None:
    # Celery's Django fixup no longer closes connections around every task (settings:
    # CELERY_DB_REUSE_MAX); Django's rules apply instead, as after a web request: closed when
    # older than CONN_MAX_AGE, broken, or left in a transaction. Not in a caller running a task
    # eagerly: that is the caller's connection, maybe inside its transaction.
    if task is None or getattr(task.request, "is_eager", False):
        return
    global _next_recycle
    now = time.monotonic()
    # Applying them resets the health check (CONN_HEALTH_CHECKS): the next query would cost
    # one more round trip. So after a run that left a connection in doubt, else once a second.
    if now >= _next_recycle or any(
        conn.errors_occurred or not conn.get_autocommit()
        for conn in connections.all(initialized_only=True)
        if conn.connection is not None
    ):
        close_old_connections()
        _next_recycle = now + _RECYCLE_INTERVAL


@worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    _record(sender.hostname)
    try:
        queues = [queue.name for queue in sender.app.amqp.queues.consume_from.values()]
        record_worker_queues(sender.hostname, queues)
    except Exception:
        logger.warning("could not record the queues of worker %s", sender.hostname, exc_info=True)


@heartbeat_sent.connect
def _heartbeat_sent(sender: Any = None, **kwargs: Any) -> None:
    _record(sender.eventer.hostname)
    # Off the worker's event loop: a rescue may publish a message.
    publisher().call_later(0, _rescue_buffered_runs)


def _rescue_buffered_runs() -> None:
    # A buffered run whose running run died without handing the lock over gets its turn once
    # the lock has expired (scheduler/worker/overlap.py): one Redis read while none is buffered.
    try:
        overlap_rescue()
    except Exception:
        logger.warning("could not look for stranded buffered runs", exc_info=True)


@worker_shutdown.connect
def _worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    publisher().flush(timeout=5.0)
    try:
        forget_worker(sender.hostname)
    except Exception:  # shutting down: Redis may already be gone
        logger.debug("could not remove worker %s from the live set", sender.hostname)


def _record(hostname: str) -> None:
    # A heartbeat must never take the worker down: a Redis hiccup only delays liveness.
    try:
        record_worker_seen(hostname)
    except Exception:
        logger.warning("could not record heartbeat of worker %s", hostname, exc_info=True)


# --- task lifecycle -> events ----------------------------------------------------------------


@before_task_publish.connect
def _task_queued(
    sender: str | None = None, headers: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    headers = headers or {}
    payload = {"queue": kwargs.get("routing_key") or ""}
    if headers.get("scheduled_for"):
        payload["scheduled_for"] = headers["scheduled_for"]  # a scheduled run's due time
    event_record_safely(
        type="task.queued",
        task_id=headers.get("id", ""),
        task_name=headers.get("task", sender or ""),
        periodic_task_name=headers.get("periodic_task_name") or "",
        state="PENDING",
        payload=payload,
        **object_of(headers),
    )


def object_of(headers: Any) -> dict[str, str]:
    """The domain object a run belongs to, from its object header (scheduler/protocol.py)."""
    found = protocol.object_of(headers)
    if found is None:
        return {}
    return {"object_type": found[0], "object_id": found[1]}


def _request_fields(task: Any) -> dict[str, Any]:
    request = task.request
    headers = {protocol.OBJECT_HEADER: getattr(request, protocol.OBJECT_HEADER, None)}
    return {
        "task_id": request.id or "",
        "task_name": task.name,
        "periodic_task_name": getattr(request, "periodic_task_name", None) or "",
        "worker": request.hostname or "",
        **object_of(headers),
    }


def _duration(task_id: str | None) -> float | None:
    started = _started.pop(task_id or "", None)
    return None if started is None else round(time.monotonic() - started, 6)


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    _started[task_id or ""] = time.monotonic()
    event_record_safely(type="task.started", state="STARTED", **_request_fields(task))


@task_success.connect
def _task_succeeded(sender: Any = None, **kwargs: Any) -> None:
    fields = _request_fields(sender)
    event_record_safely(
        type="task.succeeded", state="SUCCESS", duration=_duration(fields["task_id"]), **fields
    )


@task_failure.connect
def _task_failed(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **kwargs: Any,
) -> None:
    fields = _request_fields(sender)
    event_record_safely(
        type="task.failed",
        state="FAILURE",
        duration=_duration(fields["task_id"]),
        message=f"{type(exception).__name__}: {exception}" if exception else "",
        **fields,
    )


@task_failure.connect
def _keep_dead_letter(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    kwargs: Any = None,
    **extra: Any,
) -> None:
    # After `_task_failed`: the run's failure is in the log before its dead letter. Celery sends
    # task_failure only once no retry is left (scheduler/worker/dead_letters.py).
    dead_letter_keep(sender, task_id=task_id or "", exception=exception, kwargs=kwargs)


@task_retry.connect
def _task_retried(sender: Any = None, reason: Any = None, **kwargs: Any) -> None:
    fields = _request_fields(sender)
    event_record_safely(
        type="task.retried",
        state="RETRY",
        duration=_duration(fields["task_id"]),
        message=str(reason or ""),
        **fields,
    )


@task_revoked.connect
def _task_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    expired: bool = False,
    **kwargs: Any,
) -> None:
    why = "expired" if expired else "terminated" if terminated else "revoked"
    if terminated:
        # Stopped by another run's overlap policy: which run, and why.
        why = stop_reason_or_none(getattr(request, "id", "") or "") or why
    event_record_safely(
        type="task.revoked",
        task_id=getattr(request, "id", "") or "",
        task_name=getattr(sender, "name", "") or "",
        periodic_task_name=getattr(request, "periodic_task_name", None) or "",
        state="REVOKED",
        worker=getattr(request, "hostname", "") or "",
        message=why,
    )
