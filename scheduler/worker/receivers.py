"""Celery signal receivers: each translates one worker or task event into one call of our code."""

from __future__ import annotations

import gc
import logging
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

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
from scheduler.observability.dispatch_lag import dispatch_finished, dispatch_started
from scheduler.observability.worker_heartbeats import (
    forget_worker,
    record_worker_queues,
    record_worker_seen,
)
from scheduler.worker import watchdog
from scheduler.worker.dead_letters import dead_letter_keep
from scheduler.worker.overlap import overlap_rescue, stop_reason_or_none
from scheduler.worker.queue_pauses import queues_started_for
from scheduler.worker.result_backend import defer_started

logger = logging.getLogger(__name__)


class _Start(NamedTuple):
    monotonic: float
    # The run's dispatch times and lags so far (observability/dispatch_lag.py); None on a
    # retry's attempt, whose wait was its countdown.
    dispatch: dict[str, Any] | None


# task id -> how a run started, in the process that runs it; popped when it ends.
_started: dict[str, _Start] = {}
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


@worker_process_init.connect
def _enable_watchdog(**kwargs: Any) -> None:
    watchdog.enable()


@worker_process_init.connect
@worker_ready.connect
def _freeze_the_loaded_heap(**kwargs: Any) -> None:
    # Django, the apps and the catalog, loaded once and kept for the process's life, are some
    # 200,000 objects that every full garbage collection walked again: ~0.1 s each in the
    # worker's main process, a few times a minute at full speed (benchmarks/pipeline.py). Moved
    # out of the collector's sight (the pool process: what it inherited from the fork).
    gc.freeze()


def _hard_limit(task: Any) -> float | None:
    limits = getattr(task, "_limits", None)
    if limits is not None:
        return float(limits()[0])
    given = (getattr(task.request, "timelimit", None) or (None, None))[0]
    hard = given or task.time_limit or task.app.conf.task_time_limit
    return float(hard) if hard else None


@task_prerun.connect
def _arm_watchdog(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    # Before the other receivers of the run's start: they write to the database.
    if task is None or getattr(task.request, "is_eager", False):
        return
    hard = _hard_limit(task)
    if hard is not None:
        watchdog.arm(task_id or "", hard)


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
        # As started (-Q), paused queues included: a resume takes them up again
        # (scheduler/worker/queue_pauses.py).
        started_for = queues_started_for()
        queues = (
            sorted(started_for)
            if started_for is not None
            else [queue.name for queue in sender.app.amqp.queues.consume_from.values()]
        )
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
    if headers is None:
        headers = {}
    else:
        # The message's own headers: what is set here goes out with it. Beat and backfill set
        # their own (kept); a copy a worker sends again for a retry keeps the first one.
        headers.setdefault(protocol.PUBLISHED_AT_HEADER, datetime.now(UTC).isoformat())
    payload = {"queue": kwargs.get("routing_key") or ""}
    if headers.get(protocol.SCHEDULED_FOR_HEADER):
        # A scheduled run's due time, in its history.
        payload["scheduled_for"] = headers[protocol.SCHEDULED_FOR_HEADER]
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
    headers = {protocol.OBJECT_HEADER: _header(request, protocol.OBJECT_HEADER)}
    return {
        "task_id": request.id or "",
        "task_name": task.name,
        "periodic_task_name": _header(request, "periodic_task_name") or "",
        "worker": request.hostname or "",
        **object_of(headers),
    }


def _header(request: Any, name: str) -> Any:
    # A worker puts message headers on the request; a run in the caller keeps them apart.
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def _dispatch_started(request: Any, started: datetime) -> dict[str, Any] | None:
    if request is None or (getattr(request, "retries", 0) or 0) > 0:
        return None
    try:
        return dispatch_started(
            scheduled_for=_header(request, protocol.SCHEDULED_FOR_HEADER),
            published_at=_header(request, protocol.PUBLISHED_AT_HEADER),
            eta=getattr(request, "eta", None),
            started=started,
        )
    except Exception:  # headers someone else wrote: never fail the run over them
        logger.warning("could not read the dispatch times of a run", exc_info=True)
        return None


def _ended(task_id: str | None, *, finished: bool) -> tuple[float | None, dict[str, Any]]:
    """How long the attempt took, and its end event's payload (its dispatch lags)."""
    start = _started.pop(task_id or "", None)
    if start is None:
        return None, {}
    took = round(time.monotonic() - start.monotonic, 6)
    if start.dispatch is None:
        return took, {}
    dispatch = start.dispatch
    if finished:
        dispatch = dispatch_finished(dispatch, took=took, finished=datetime.now(UTC))
    return took, {"dispatch": dispatch}


@task_prerun.connect
def _task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    now = datetime.now(UTC)
    dispatch = _dispatch_started(getattr(task, "request", None), now)
    _started[task_id or ""] = _Start(time.monotonic(), dispatch)
    event_record_safely(
        type="task.started",
        state="STARTED",
        payload={"dispatch": dispatch} if dispatch else None,
        at=now,
        **_request_fields(task),
    )


@task_postrun.connect
def _forget_start(task_id: str | None = None, **kwargs: Any) -> None:
    # A run that ended without a success, failure or retry (skipped, a duplicate dropped).
    _started.pop(task_id or "", None)


@task_success.connect
def _task_succeeded(sender: Any = None, **kwargs: Any) -> None:
    fields = _request_fields(sender)
    duration, payload = _ended(fields["task_id"], finished=True)
    event_record_safely(
        type="task.succeeded", state="SUCCESS", duration=duration, payload=payload, **fields
    )


@task_failure.connect
def _task_failed(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    **kwargs: Any,
) -> None:
    fields = _request_fields(sender)
    duration, payload = _ended(fields["task_id"], finished=True)
    event_record_safely(
        type="task.failed",
        state="FAILURE",
        duration=duration,
        message=f"{type(exception).__name__}: {exception}" if exception else "",
        payload=payload,
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
    # Not finished: the run goes on in another attempt.
    duration, payload = _ended(fields["task_id"], finished=False)
    event_record_safely(
        type="task.retried",
        state="RETRY",
        duration=duration,
        message=str(reason or ""),
        payload=payload,
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


@task_postrun.connect
def _disarm_watchdog(**kwargs: Any) -> None:
    # After the other receivers of the run's end: its result and events are written by now.
    watchdog.disarm()
