"""Our beat scheduler: django-celery-beat's database scheduler, plus what the product needs.

- Each periodic task's misfire policy: `skip` drops the runs missed while beat was down and
  waits for the next due time; `run_once` (django-celery-beat's own behaviour) runs once.
- A heartbeat in Redis on every tick, which `scheduler status`, the health check task and
  the dashboard read to tell whether beat is alive.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import timedelta
from typing import Any, cast

from celery.schedules import schedstate
from celery.utils.time import maybe_make_aware
from django_celery_beat import schedulers as beat_schedulers
from django_celery_beat.models import PeriodicTask

from scheduler.health import BEAT_HEARTBEAT_KEY
from scheduler.policies import MisfirePolicy
from scheduler.redis_connection import get_redis, redis_key

logger = logging.getLogger(__name__)

# A run later than this is a misfire (beat was down), not the ordinary lag of a tick.
MISFIRE_GRACE = timedelta(seconds=60)
_HEARTBEAT_EVERY = 5.0


def is_misfire(*, remaining: timedelta, grace: timedelta = MISFIRE_GRACE) -> bool:
    """`remaining` is the schedule's time to the next run: negative when a run is overdue."""
    return remaining < -grace


class ModelEntry(beat_schedulers.ModelEntry):
    def __init__(self, model: PeriodicTask, app: Any = None) -> None:
        super().__init__(model, app)
        options = cast(Any, model).options if _has_options(model) else None
        self.misfire = options.misfire if options is not None else MisfirePolicy.RUN_ONCE

    def is_due(self) -> schedstate:
        state = super().is_due()
        if (
            not state.is_due
            or self.misfire != MisfirePolicy.SKIP
            or self.model.clocked_id is not None  # a one-off runs once, however late
        ):
            return state
        last_run_at = self.last_run_at
        if last_run_at is None:
            return state
        assert self.schedule is not None
        remaining = self.schedule.remaining_estimate(last_run_at)
        if not is_misfire(remaining=remaining):
            return state
        return self._skip_missed(remaining)

    def _skip_missed(self, remaining: timedelta) -> schedstate:
        now = maybe_make_aware(self._default_now())
        # Not a save(): date_changed must not move, or every beat would reload the schedule.
        PeriodicTask.objects.filter(pk=self.model.pk).update(last_run_at=now)
        self.last_run_at = self.model.last_run_at = now
        message = f"runs missed for {-remaining} skipped (misfire policy: skip)"
        logger.info("%s: %s", self.name, message)
        from scheduler.events import event_record_safely

        event_record_safely(
            type="task.skipped",
            task_name=self.task,
            periodic_task_name=self.name,
            state="SKIPPED",
            message=message,
        )
        assert self.schedule is not None
        return schedstate(False, max(self.schedule.remaining_estimate(now).total_seconds(), 1.0))


def _has_options(model: PeriodicTask) -> bool:
    from scheduler.models import ScheduleOptions

    try:
        cast(Any, model).options  # noqa: B018
    except ScheduleOptions.DoesNotExist:
        return False
    return True


class DatabaseScheduler(beat_schedulers.DatabaseScheduler):
    Entry = ModelEntry

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_heartbeat = 0.0
        super().__init__(*args, **kwargs)

    def enabled_models_qs(self) -> Any:
        # One query for the options of every entry, not one per entry.
        return super().enabled_models_qs().select_related("options")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        self.heartbeat()
        return interval

    def heartbeat(self) -> None:
        now = time.time()
        if now - self._last_heartbeat < _HEARTBEAT_EVERY:
            return
        self._last_heartbeat = now
        payload = {"at": now, "pid": os.getpid(), "hostname": socket.gethostname()}
        try:
            get_redis().set(redis_key(BEAT_HEARTBEAT_KEY), json.dumps(payload), ex=3600)
        except Exception:  # beat keeps scheduling while Redis hiccups; health shows it
            logger.warning("could not record the beat heartbeat", exc_info=True)
