"""What the tests of our beat scheduler in-process share: the scheduler with publishing captured,
the clock moved on, the pub/sub messages of change notices, and the Redis keys of earlier beats."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from django_celery_beat.models import PeriodicTask

from config.celery import app
from scheduler.beat import scheduler as beat
from scheduler.beat.scheduler import DatabaseScheduler, Entry
from scheduler.core.redis_connection import get_redis, redis_key


def redis_client() -> Any:
    """This run's Redis, untyped (redis-py types every answer as one that may be awaited)."""
    return get_redis()


def next_message(subscription: Any, timeout: float) -> Any:
    # get_message answers None at once when what it read was the (ignored) subscribe reply.
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = subscription.get_message(timeout=remaining)
        if message is not None:
            return message
    return None


def later(seconds: float) -> Any:
    """The clock moved on by `seconds` (schedules read the clock themselves)."""
    return time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True)


def forget_beats() -> None:
    """Remove the leader lock and the heartbeats left by earlier beats."""
    redis = redis_client()
    keys = [redis_key(beat.LEADER_KEY), redis_key(beat.BEAT_HEARTBEAT_KEY)]
    keys += redis.scan_iter(match=f"{redis_key(beat.BEAT_STANDBY_KEY)}:*")
    redis.delete(*keys)


class Recording(DatabaseScheduler):
    """Our scheduler with publishing captured: (periodic task name, task, args, kwargs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, str, Any, Any]] = []
        self.dues: list[datetime | None] = []
        super().__init__(*args, **kwargs)

    def _send(
        self, entry: Entry, producer: Any, due: datetime | None = None, **publish: Any
    ) -> str | None:
        self.sent.append((entry.name, entry.task, json.loads(entry.args), json.loads(entry.kwargs)))
        self.dues.append(due)
        return f"task-{len(self.sent)}"


def recording_scheduler() -> Recording:
    return Recording(app=app, lazy=True)


def sent_names(scheduler: Recording) -> list[str]:
    return [name for name, *_ in scheduler.sent]


def set_last_run(name: str, last_run_at: datetime | None) -> None:
    PeriodicTask.objects.filter(name=name).update(last_run_at=last_run_at)
