"""The base class of every catalog task: enforces a periodic task's overlap policy.

A run sent by beat (or by "Run now") carries its periodic task's name in the message headers.
When that periodic task's overlap policy is `skip`, the run takes a Redis lock named after the
periodic task for as long as it runs; a run that finds the lock taken does nothing, is stored
with the state SKIPPED and records a `task.skipped` event.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from celery import Task
from celery.exceptions import Ignore

from config.queues import QUEUES, queue_for
from scheduler.policies import OverlapPolicy
from scheduler.redis_connection import get_redis, redis_key

SKIPPED = "SKIPPED"
# The lock outlives the longest the run may take, so a killed worker cannot hold it for ever.
_LOCK_MARGIN = 60


def overlap_lock_key(periodic_task_name: str) -> str:
    return redis_key(f"scheduler:running:{periodic_task_name}")


def overlap_policy_of(periodic_task_name: str, task_name: str) -> str:
    from scheduler.catalog import catalog
    from scheduler.models import ScheduleOptions

    policy = (
        ScheduleOptions.objects.filter(periodic_task__name=periodic_task_name)
        .values_list("overlap", flat=True)
        .first()
    )
    if policy is not None:
        return str(policy)
    if task_name in catalog:
        return str(catalog.get(task_name).overlap)
    return str(OverlapPolicy.ALLOW)


class CatalogTask(Task):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A worker puts message headers on the request; a run in the caller keeps them apart.
        periodic_task_name = getattr(self.request, "periodic_task_name", None) or (
            self.request.headers or {}
        ).get("periodic_task_name")
        if (
            not periodic_task_name
            or overlap_policy_of(periodic_task_name, self.name) != OverlapPolicy.SKIP
        ):
            return super().__call__(*args, **kwargs)
        lock = get_redis().lock(
            overlap_lock_key(periodic_task_name),
            timeout=self._lock_ttl(),
            blocking=False,
            thread_local=False,
        )
        if not lock.acquire(blocking=False):
            self._skip(periodic_task_name)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            # Expired already (the run outlived its TTL): the lock is someone else's now.
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()

    def _lock_ttl(self) -> int:
        spec = QUEUES[queue_for(self.name)]
        return int(self.time_limit or spec.hard_limit) + _LOCK_MARGIN

    def _skip(self, periodic_task_name: str) -> None:
        from scheduler.events import event_record_safely

        reason = f"skipped: the previous run of {periodic_task_name!r} is still running"
        self.update_state(state=SKIPPED, meta={"skipped": True, "reason": reason})
        event_record_safely(
            type="task.skipped",
            task_id=self.request.id or "",
            task_name=self.name,
            periodic_task_name=periodic_task_name,
            state=SKIPPED,
            worker=self.request.hostname or "",
            message=reason,
        )
        # Ignore: the state stored above stays; the message is acknowledged, not retried.
        raise Ignore(reason)
