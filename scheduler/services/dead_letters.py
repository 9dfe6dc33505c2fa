"""Writes of dead letters (runs that failed their last retry, kept by the worker:
scheduler/worker/dead_letters.py): requeue one as a new run, or discard it; each audited as the
staff member's, with its event for the live pages. And how long resolved ones are kept.

A requeue goes through the catalog as a new run does: a task removed from the catalog since, or
arguments its parameters no longer accept, are refused with the field named, and nothing
changes. Only an open letter is resolved, and only once: the claim is a conditional UPDATE, so
of two people pressing Requeue together one queues it and the other is told it was requeued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError

from config.queues import QUEUES
from scheduler.live.events import event_record
from scheduler.models import AuditEntry, DeadLetter, Source
from scheduler.protocol import EventType
from scheduler.services.audit import actor_of, audit_write
from scheduler.services.errors import (
    DeadLetterNotFound,
    DeadLetterResolved,
    ScheduleError,
    User,
)
from scheduler.services.retention import RetentionPolicy, retention_register
from scheduler.services.runs import task_enqueue, task_validate

DEAD_LETTERS = "dead letters"
RESOLVED = (DeadLetter.Status.REQUEUED, DeadLetter.Status.DISCARDED)


def _open_letter(dead_letter_id: int) -> DeadLetter:
    letter = DeadLetter.objects.filter(pk=dead_letter_id).first()
    if letter is None:
        raise DeadLetterNotFound(dead_letter_id)
    if letter.status != DeadLetter.Status.OPEN:
        raise DeadLetterResolved(dead_letter_id, letter.status)
    return letter


def _claim(letter: DeadLetter, status: str, *, actor: User, at: datetime) -> None:
    """Mark `letter` resolved if it is still open; DeadLetterResolved when someone was first."""
    claimed = DeadLetter.objects.filter(pk=letter.pk, status=DeadLetter.Status.OPEN).update(
        status=status, resolved_at=at, resolved_by=actor_of(actor)
    )
    if not claimed:
        now = DeadLetter.objects.filter(pk=letter.pk).values_list("status", flat=True).first()
        if now is None:
            raise DeadLetterNotFound(letter.pk)
        raise DeadLetterResolved(letter.pk, now)
    letter.status, letter.resolved_at, letter.resolved_by = status, at, actor_of(actor)


def _record(
    letter: DeadLetter,
    action: AuditEntry.Action,
    *,
    actor: User,
    source: str,
    actor_name: str = "",
    **changes: Any,
) -> None:
    # Under the name of its periodic task when it had one (that schedule's audit trail shows
    # it), else of its task.
    name = letter.periodic_task_name or letter.task_name
    periodic_task = (
        PeriodicTask.objects.filter(name=letter.periodic_task_name).first()
        if letter.periodic_task_name
        else None
    )
    audit_write(
        periodic_task,
        name=name,
        action=action,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes={
            "dead_letter": [None, letter.pk],
            "failed_task_id": [None, letter.task_id],
            "status": [DeadLetter.Status.OPEN.value, letter.status],
            **changes,
        },
    )
    event_record(
        type=EventType.DEAD_LETTER_REQUEUED
        if action == AuditEntry.Action.REQUEUED
        else EventType.DEAD_LETTER_DISCARDED,
        task_id=letter.task_id,
        task_name=letter.task_name,
        periodic_task_name=letter.periodic_task_name,
        message=f"dead letter {letter.pk} {action}",
        payload={
            "dead_letter_id": letter.pk,
            "requeued_as": letter.requeued_as,
            "source": source,
        },
        object_type=letter.object_type,
        object_id=letter.object_id,
    )


def dead_letter_requeue(
    *,
    dead_letter_id: int,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> str:
    """Queue the run of open dead letter `dead_letter_id` again, as a new task on its queue
    (the task's own when that queue is gone); returns the new task id.

    DeadLetterNotFound, DeadLetterResolved (requeued or discarded already), a ScheduleError
    naming `task` or `params` when the catalog refuses the run now: nothing changes. When the
    broker refuses the message, the letter is open again and the error raised (called outside a
    transaction, as the interfaces call it; inside one the message goes when it commits).
    """
    letter = _open_letter(dead_letter_id)
    queue = letter.queue if letter.queue in QUEUES else None
    # Checked before anything is written: a refusal leaves the letter as it was.
    checked = task_validate(task=letter.task_name, params=letter.kwargs, queue=queue)
    _claim(letter, DeadLetter.Status.REQUEUED, actor=actor, at=timezone.now())
    try:
        # Outside a transaction the message is sent here and now: a broker that refuses it
        # reopens the letter below.
        task_id = task_enqueue(
            task=checked.task,
            params=checked.params,
            queue=checked.queue,
            periodic_task_name=letter.periodic_task_name or None,
        )
    except Exception:
        DeadLetter.objects.filter(
            pk=letter.pk, status=DeadLetter.Status.REQUEUED, requeued_as=""
        ).update(status=DeadLetter.Status.OPEN, resolved_at=None, resolved_by=None)
        raise
    with transaction.atomic():
        DeadLetter.objects.filter(pk=letter.pk).update(requeued_as=task_id)
        letter.requeued_as = task_id
        _record(
            letter,
            AuditEntry.Action.REQUEUED,
            actor=actor,
            actor_name=actor_name,
            source=source,
            requeued_as=[None, task_id],
        )
    return task_id


def dead_letter_discard(
    *,
    dead_letter_id: int,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> DeadLetter:
    """Close open dead letter `dead_letter_id` without running it again; the letter.

    DeadLetterNotFound, or DeadLetterResolved when it was requeued or discarded already.
    """
    letter = _open_letter(dead_letter_id)
    with transaction.atomic():
        _claim(letter, DeadLetter.Status.DISCARDED, actor=actor, at=timezone.now())
        _record(
            letter, AuditEntry.Action.DISCARDED, actor=actor, actor_name=actor_name, source=source
        )
    return letter


# --- Many at once (the admin's actions) ----------------------------------------------------------


@dataclass
class DeadLetterBatch:
    """What a bulk requeue or discard did: per letter id, the new task id (requeued) or ""
    (discarded), and per letter id refused, why."""

    done: dict[int, str] = field(default_factory=dict)
    refused: dict[int, str] = field(default_factory=dict)


# A refusal that is the letter's own; anything else is a bug and raised.
REFUSALS = (DeadLetterNotFound, DeadLetterResolved, ScheduleError)


def _each(ids: Iterable[int], resolve: Callable[[int], str]) -> DeadLetterBatch:
    batch = DeadLetterBatch()
    pending = list(ids)
    for position, dead_letter_id in enumerate(pending):
        try:
            batch.done[dead_letter_id] = resolve(dead_letter_id)
        except REFUSALS as exc:
            batch.refused[dead_letter_id] = str(exc)
        except OperationalError as exc:
            # The broker is down: the others would wait for it in turn, and fail too.
            why = f"the broker (Redis) could not be reached, nothing was queued: {exc}"
            for rest in pending[position:]:
                batch.refused[rest] = why
            break
    return batch


def dead_letters_requeue(
    *, dead_letter_ids: Iterable[int], actor: User = None, source: str = Source.SYSTEM
) -> DeadLetterBatch:
    """`dead_letter_requeue` of each letter, each on its own: one refused stops no other."""
    return _each(
        dead_letter_ids,
        lambda pk: dead_letter_requeue(dead_letter_id=pk, actor=actor, source=source),
    )


def dead_letters_discard(
    *, dead_letter_ids: Iterable[int], actor: User = None, source: str = Source.SYSTEM
) -> DeadLetterBatch:
    """`dead_letter_discard` of each letter, each on its own: one refused stops no other."""

    def discard(pk: int) -> str:
        dead_letter_discard(dead_letter_id=pk, actor=actor, source=source)
        return ""

    return _each(dead_letter_ids, discard)


# --- Retention -----------------------------------------------------------------------------------


def _resolved(rows: QuerySet[Any], cutoff: datetime | None) -> QuerySet[Any]:
    # Open letters wait for staff, whatever their age: even `retention_clear` keeps them.
    return rows.filter(status__in=RESOLVED)


retention_register(
    RetentionPolicy(
        label=DEAD_LETTERS,
        model=DeadLetter,
        # Aged by when staff resolved it, not by when it failed: a letter looked at today is kept
        # its days from today. Open letters have none, and so never reach a cutoff.
        field="resolved_at",
        setting="DEAD_LETTER_RETENTION_DAYS",
        scope=_resolved,
        scope_description="after they were requeued or discarded",
    )
)
