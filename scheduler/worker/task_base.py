"""The base class of every catalog task: one execution per delivery, and overlap policies.

A run delivered by the broker first claims its attempt (scheduler/worker/deduplication.py): a second
copy of a run that succeeded or still runs elsewhere is dropped: acknowledged, its STARTED row
discarded, and recorded as a `task.duplicate` event carrying the state of the copy that counts.

A run sent by beat (or by "Run now") carries its periodic task's name in the message headers.
When that periodic task's overlap policy is `skip`, the run takes a Redis lock named after the
periodic task for as long as it runs; a run that finds the lock taken does nothing, is stored
with the state SKIPPED and records a `task.skipped` event.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis
from celery import Task, states
from celery.exceptions import Ignore
from django.db import DatabaseError
from django_celery_results.models import TaskResult

from config.queues import QUEUES, queue_for
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.events import event_record_safely
from scheduler.protocol import SKIPPED, running_key
from scheduler.schedules.policies import OverlapPolicy
from scheduler.worker.deduplication import claim_run
from scheduler.worker.result_backend import discard_started

logger = logging.getLogger(__name__)

# The lock outlives the longest the run may take, so a killed worker cannot hold it for ever.
_LOCK_MARGIN = 60


def overlap_lock_key(periodic_task_name: str) -> str:
    return redis_key(running_key(periodic_task_name))


def stored_state(task_id: str) -> str | None:
    return TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()


def _stored_state_or_none(task_id: str) -> str | None:
    try:
        return stored_state(task_id)
    except DatabaseError as exc:
        # The database restarting: the run goes on (its own errors retry it), guarded by the
        # claim alone; failing it here would cut its retries short.
        logger.warning("could not read the stored state of %s: %s", task_id, exc)
        return None


def _periodic_task_name(request: Any) -> str | None:
    # A worker puts message headers on the request; a run in the caller keeps them apart.
    return getattr(request, "periodic_task_name", None) or (request.headers or {}).get(
        "periodic_task_name"
    )


class CatalogTask(Task):
    """The worker's side of a catalog task: one execution per delivery, and the overlap policy.

    The catalog declares its tasks on a subclass (scheduler/catalog/declaring.py) that answers
    the two questions below from its registry; the worker runtime imports nothing of the catalog.
    """

    #: Whether the catalog holds this task now (beat refuses to publish one it does not).
    in_catalog = False

    def overlap_policy(self, periodic_task_name: str) -> str:
        """The overlap policy a run of `periodic_task_name` follows, resolved as it starts."""
        return OverlapPolicy.ALLOW.value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        periodic_task_name = _periodic_task_name(self.request)
        if self.request.delivery_info and not self.request.is_eager:
            self._claim_delivery(periodic=bool(periodic_task_name))
        if not periodic_task_name or self.overlap_policy(periodic_task_name) != OverlapPolicy.SKIP:
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

    def _claim_delivery(self, *, periodic: bool) -> None:
        """Run this delivery only if no other copy of the attempt ran or runs (deduplication)."""
        request = self.request
        task_id = request.id or ""
        # A copy the broker handed out again, one held until its ETA, or a periodic run (beat
        # publishes a run again under the same id when its leader died before recording it):
        # the first copy may have finished already.
        if (request.delivery_info or {}).get("redelivered") or request.eta or periodic:
            self._drop_if_succeeded(task_id)
        try:
            claim = claim_run(
                task_id=task_id,
                retries=request.retries or 0,
                node=request.hostname or "",
                ttl_seconds=self._lock_ttl(),
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            # Redis restarting: running a rare duplicate beats failing the run, and the stored
            # SUCCESS check above still holds.
            logger.warning("%s[%s]: not claimed (%s): runs anyway", self.name, task_id, exc)
            return
        if claim.took_over and claim.holder is not None:
            logger.warning(
                "%s[%s]: taken over from %s (pid %s), which died while running it",
                self.name,
                task_id,
                claim.holder.node or claim.holder.host,
                claim.holder.pid,
            )
            self._drop_if_succeeded(task_id)  # it may have died after storing its result
        if not claim.acquired:
            holder = claim.holder
            where = f"{holder.node or holder.host} (pid {holder.pid})" if holder else "elsewhere"
            stored = _stored_state_or_none(task_id)
            if stored in states.READY_STATES:
                self._drop_duplicate(f"duplicate delivery dropped: the run ended {stored}", stored)
            self._drop_duplicate(f"duplicate delivery dropped: running in {where}", "STARTED")

    def _drop_if_succeeded(self, task_id: str) -> None:
        state = _stored_state_or_none(task_id)
        if state == states.SUCCESS:
            self._drop_duplicate(f"duplicate delivery dropped: the run ended {state}", state)

    def _drop_duplicate(self, reason: str, state: str) -> None:
        logger.warning("%s[%s]: %s", self.name, self.request.id, reason)
        # Its STARTED row, written just before the task body, must not land over the state of
        # the copy that counts.
        discard_started(self.request.id or "")
        # The state of the run that counts, so the dashboard's row shows it again.
        event_record_safely(
            type="task.duplicate",
            task_id=self.request.id or "",
            task_name=self.name,
            periodic_task_name=getattr(self.request, "periodic_task_name", None) or "",
            state=state,
            worker=self.request.hostname or "",
            message=reason,
        )
        # Acknowledged, and nothing more stored for it: the stored state is the other copy's.
        raise Ignore(reason)

    def _lock_ttl(self) -> int:
        # A limit given with the message (apply_async(time_limit=...)) wins over the task's.
        hard = (getattr(self.request, "timelimit", None) or (None, None))[0]
        spec = QUEUES[queue_for(self.name)]
        return int(hard or self.time_limit or spec.hard_limit) + _LOCK_MARGIN

    def _skip(self, periodic_task_name: str) -> None:
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
