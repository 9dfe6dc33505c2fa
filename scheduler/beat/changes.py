"""Change notices for beat: which periodic tasks and schedule rows changed, on Redis pub/sub.

Every save or delete of a `PeriodicTask`, its `ScheduleOptions` or a schedule row (interval,
crontab, solar, clocked), through the admin, the CLI, the API or any other ORM code, is noted
by the receivers below; once the transaction commits, one message names all of them on
CHANGES_CHANNEL. Beat (scheduler/beat/scheduler.py) waits on that channel between ticks, so an edit
reaches it at once and it reloads only those rows. Code that changes rows without the ORM's
signals (`QuerySet.update()`) calls `notify_beat` itself, or `PeriodicTasks.update_changed()`
as django-celery-beat asks: beat sees that marker move within a second and compares every row.

A notice that cannot be sent (Redis down) is logged and dropped: the marker catches it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from redis.exceptions import RedisError

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import ScheduleOptions
from scheduler.protocol import BEAT_CHANGES_CHANNEL as CHANGES_CHANNEL

logger = logging.getLogger(__name__)

SCHEDULE_KINDS = {
    IntervalSchedule: "interval",
    CrontabSchedule: "crontab",
    SolarSchedule: "solar",
    ClockedSchedule: "clocked",
}


@dataclass
class Changes:
    """Ids of changed rows: periodic tasks (saved, or their options), deleted ones, schedules."""

    tasks: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    schedules: dict[str, set[int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.deleted or any(self.schedules.values()))

    def add(
        self,
        *,
        tasks: Iterable[int] = (),
        deleted: Iterable[int] = (),
        schedules: dict[str, Iterable[int]] | None = None,
    ) -> None:
        self.tasks.update(int(pk) for pk in tasks)
        self.deleted.update(int(pk) for pk in deleted)
        for kind, ids in (schedules or {}).items():
            if kind in SCHEDULE_KINDS.values():
                self.schedules.setdefault(kind, set()).update(int(pk) for pk in ids)

    def add_message(self, data: Any) -> None:
        """Add what a notice names; a notice that is not ours is ignored (and logged)."""
        try:
            notice = json.loads(data)
            self.add(
                tasks=notice.get("tasks", ()),
                deleted=notice.get("deleted", ()),
                schedules=notice.get("schedules") or {},
            )
        except (TypeError, ValueError, AttributeError) as exc:
            logger.warning("ignored a change notice that is not one: %r (%s)", data, exc)

    def take(self) -> Changes:
        """What was noted so far; noted afresh from here."""
        taken = Changes(self.tasks, self.deleted, self.schedules)
        self.tasks, self.deleted, self.schedules = set(), set(), {}
        return taken

    def as_message(self) -> str:
        return json.dumps(
            {
                "tasks": sorted(self.tasks),
                "deleted": sorted(self.deleted),
                "schedules": {kind: sorted(ids) for kind, ids in self.schedules.items() if ids},
            }
        )


_local = threading.local()


def _pending() -> Changes:
    pending: Changes | None = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = Changes()
    return pending


def notify_beat(
    *,
    tasks: Iterable[int] = (),
    deleted: Iterable[int] = (),
    schedules: dict[str, Iterable[int]] | None = None,
) -> None:
    """Tell every beat these rows changed, once the current transaction (if any) commits."""
    _pending().add(tasks=tasks, deleted=deleted, schedules=schedules)
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        send_pending()
        return
    # One message per transaction: registered once (again if a rollback dropped it; what the
    # rolled-back work noted goes out with the next message, which costs beat one reload).
    if not any(callback is send_pending for _, callback, _ in connection.run_on_commit):
        transaction.on_commit(send_pending)


def send_pending() -> None:
    changes = _pending().take()
    if not changes:
        return

    try:
        get_redis().publish(redis_key(CHANGES_CHANNEL), changes.as_message())
    except (RedisError, OSError) as exc:
        logger.warning("could not tell beat about changed schedules (it will find them): %s", exc)


def _task_saved(sender: Any, instance: PeriodicTask, **kwargs: Any) -> None:
    notify_beat(tasks=[instance.pk])


def _task_deleted(sender: Any, instance: PeriodicTask, **kwargs: Any) -> None:
    notify_beat(deleted=[instance.pk])


def _options_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    notify_beat(tasks=[instance.periodic_task_id])


def _schedule_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    notify_beat(schedules={SCHEDULE_KINDS[sender]: [instance.pk]})


def connect() -> None:
    post_save.connect(_task_saved, sender=PeriodicTask, dispatch_uid="beat-changes-task")
    post_delete.connect(_task_deleted, sender=PeriodicTask, dispatch_uid="beat-changes-task")
    for signal in (post_save, post_delete):
        signal.connect(_options_changed, sender=ScheduleOptions, dispatch_uid="beat-changes-opt")
        for model in SCHEDULE_KINDS:
            signal.connect(_schedule_changed, sender=model, dispatch_uid=f"beat-changes-{model}")
