"""Writes of queues: pause and resume consuming a queue on every worker, and purge its waiting
messages; each audited under "queue:NAME", with its event for the live pages.

A pause is remembered (a QueuePause row) and broadcast: workers running now stop consuming the
queue (Celery's `cancel_consumer`), and a worker that starts or restarts later reads the rows
and leaves paused queues alone (scheduler/worker/queue_pauses.py). Resuming deletes the row and
tells the workers started to consume that queue (and only those) to take it up again
(`add_consumer`). The row is written before the broadcast: a worker starting in between reads it
once its remote control listens (worker_ready), so none is left consuming a paused queue.

Messages a worker holds already (prefetched, or waiting for their countdown) are not taken back
by a pause or a purge: they run. A purge removes the messages waiting on the broker; their runs
never start (their results stay PENDING, as Celery's own purge leaves them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction

from config.celery import app
from config.queues import QUEUES
from scheduler.live.events import event_record
from scheduler.models import AuditEntry, QueuePause, Source
from scheduler.observability.queues import queue_messages_purge
from scheduler.observability.worker_heartbeats import worker_queues, workers_seen_within
from scheduler.protocol import EventType
from scheduler.services.audit import actor_label, actor_of, audit_write
from scheduler.services.errors import QueueNotFound, ScheduleError, User

QUEUE_NOTE_MAX_LENGTH = QueuePause._meta.get_field("note").max_length or 500
# Seconds the broadcast waits for the live workers' answers (it stops as soon as all answered).
REPLY_TIMEOUT = 3.0


@dataclass(frozen=True)
class QueueControl:
    """What a pause or a resume did: `changed` False when the queue was so already (the
    workers were told again all the same); `workers`, those that answered."""

    queue: str
    paused: bool
    changed: bool
    workers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "paused": self.paused,
            "changed": self.changed,
            "workers": self.workers,
        }


def audit_name(queue: str) -> str:
    return f"queue:{queue}"


def queue_check(queue: str) -> str:
    """`queue` if it is one of ours, else QueueNotFound naming them."""
    if queue not in QUEUES:
        raise QueueNotFound(queue, list(QUEUES))
    return queue


def _record(
    queue: str,
    action: AuditEntry.Action,
    event_type: EventType,
    *,
    actor: User,
    actor_name: str,
    source: str,
    changes: dict[str, Any],
    message: str,
    **data: Any,
) -> None:
    audit_write(
        None,
        name=audit_name(queue),
        action=action,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes=changes,
    )
    event_record(
        type=event_type,
        message=message,
        payload={
            "queue": queue,
            "by": actor_label(actor, actor_name),
            "source": source,
            **data,
        },
    )


def _answered(replies: Any) -> list[str]:
    return sorted(host for reply in replies or [] for host in reply)


def _broadcast(command: str, queue: str, *, destination: list[str] | None) -> list[str]:
    """Send `command` (cancel_consumer or add_consumer) to `destination` (None: every worker);
    the live workers among them that answered. The wait ends when all of those answered."""
    alive = set(workers_seen_within(settings.WORKER_HEALTH_WINDOW))
    expected = alive if destination is None else alive & set(destination)
    if destination is not None and not destination:
        return []
    send = getattr(app.control, command)
    if not expected:
        # None alive (that we know of): told all the same, nobody to wait for.
        send(queue, destination=destination, reply=False)
        return []
    return _answered(
        send(
            queue,
            destination=destination,
            reply=True,
            timeout=REPLY_TIMEOUT,
            limit=len(expected),
        )
    )


def queue_pause(
    *,
    queue: str,
    note: str = "",
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> QueueControl:
    """Stop consuming `queue` on every worker, now and after any worker's (re)start.

    QueueNotFound for a queue that is not ours, a ScheduleError naming `note` when it is too
    long: nothing changes. Pausing a paused queue tells the workers again and records nothing.
    """
    queue_check(queue)
    note = (note or "").strip()
    if len(note) > QUEUE_NOTE_MAX_LENGTH:
        raise ScheduleError.on("note", f"at most {QUEUE_NOTE_MAX_LENGTH} characters")
    with transaction.atomic():
        _, created = QueuePause.objects.get_or_create(
            queue=queue,
            defaults={"paused_by": actor_of(actor), "paused_by_name": actor_name, "note": note},
        )
        if created:
            who = actor_label(actor, actor_name)
            _record(
                queue,
                AuditEntry.Action.QUEUE_PAUSED,
                EventType.QUEUE_PAUSED,
                actor=actor,
                actor_name=actor_name,
                source=source,
                changes={"paused": [False, True], **({"note": [None, note]} if note else {})},
                message=f"queue {queue} paused by {who}" + (f": {note}" if note else ""),
                note=note,
            )
    # After the row is committed: a worker that starts meanwhile reads it (module docstring).
    workers = _broadcast("cancel_consumer", queue, destination=None)
    return QueueControl(queue=queue, paused=True, changed=created, workers=workers)


def queue_resume(
    *,
    queue: str,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> QueueControl:
    """Consume `queue` again on the workers started to consume it.

    QueueNotFound for a queue that is not ours. Resuming a queue that is not paused tells
    those workers again and records nothing.
    """
    queue_check(queue)
    with transaction.atomic():
        pause = QueuePause.objects.select_for_update().filter(queue=queue).first()
        if pause is not None:
            pause.delete()
            who = actor_label(actor, actor_name)
            _record(
                queue,
                AuditEntry.Action.QUEUE_RESUMED,
                EventType.QUEUE_RESUMED,
                actor=actor,
                actor_name=actor_name,
                source=source,
                changes={"paused": [True, False]},
                message=f"queue {queue} resumed by {who}",
            )
    # Only the workers whose -Q names it: add_consumer would make any other worker take up a
    # queue it was never started for.
    meant = sorted(host for host, queues in worker_queues().items() if queue in queues)
    workers = _broadcast("add_consumer", queue, destination=meant)
    return QueueControl(queue=queue, paused=False, changed=pause is not None, workers=workers)


def queue_purge(
    *,
    queue: str,
    confirm: str | None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> int:
    """Remove every message waiting in `queue`; how many were removed.

    `confirm` must be the queue's name, typed again: a ScheduleError naming `confirm`
    otherwise. QueueNotFound for a queue that is not ours. Nothing is removed on refusal.
    """
    queue_check(queue)
    if (confirm or "").strip() != queue:
        given = f" (got {confirm!r})" if confirm else ""
        raise ScheduleError.on(
            "confirm", f"type the queue's name, {queue!r}, to confirm the purge{given}"
        )
    removed = queue_messages_purge(queue)
    who = actor_label(actor, actor_name)
    with transaction.atomic():
        _record(
            queue,
            AuditEntry.Action.QUEUE_PURGED,
            EventType.QUEUE_PURGED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            changes={"messages": [removed, 0]},
            message=f"queue {queue} purged by {who}: {removed} message(s) removed",
            purged=removed,
        )
    return removed
