"""Backfills: a schedule's runs of a range of time, made now (issue 19).

`backfill_plan` reads and checks a request (the schedule, the range, the overlap policy) and
lists the due times it holds, writing nothing: the admin's preview, `--dry-run` and the API's
`dry_run` show it. `backfill_start` writes the Backfill row, audits it and queues the system task
`scheduler.backfill` once committed; that task calls `backfill_publish`, which publishes the
runs a chunk at a time, saving and sending its progress after each chunk, so that a request
never waits on ten thousand messages.

Every run has the task id `backfill_run_id` gives it: the periodic task and the due time. A run
a backfill made before (its result stored, its delivery claimed by a worker or its message
queued) is counted as `existing` and not published again, so repeating a backfill duplicates
nothing. Each message carries the due time (`scheduled_for`), when it was published, the
backfill's id and its overlap policy, which the worker follows for that run instead of the
schedule's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from config.celery import app
from config.queues import queue_for
from scheduler import protocol
from scheduler.core.redis_connection import get_redis
from scheduler.live.custom_events import publish
from scheduler.models import AuditEntry, Backfill, Source, TaskEvent
from scheduler.schedules.policies import OverlapPolicy
from scheduler.schedules.rows import (
    periodic_task_schedule,
    periodic_task_times_between,
    periodic_task_times_count,
)
from scheduler.schedules.timing import run_id
from scheduler.services.audit import actor_of, change_record
from scheduler.services.errors import ScheduleError, User
from scheduler.services.schedules import schedule_get, schedule_require_catalog
from scheduler.worker.deduplication import claim_key

logger = logging.getLogger(__name__)

BACKFILL_MAX_RUNS = 10_000
# A range over the limit is counted this far for its message; beyond, it says "more than".
# (An every-minute crontab counts some 150,000 runs a second.)
COUNT_CAP = 100_000
BACKFILL_TASK = "scheduler.backfill"
DEFAULT_OVERLAP = OverlapPolicy.BUFFER_ALL.value
# Runs checked and published together; the progress is saved and sent after each chunk.
CHUNK = 500
_TIME_EXAMPLE = "e.g. 2025-01-15, 2025-01-15 09:00 or 2025-01-15T09:00:00+00:00"
# Live events of a backfill: sent to its own page (`/ws/events/?object=backfill:<id>`) too.
PROGRESS_EVENT = "backfill.progress"
FINISHED_EVENT = "backfill.finished"
OBJECT_TYPE = "backfill"


class BackfillNotFound(LookupError):
    def __init__(self, backfill_id: object):
        self.backfill_id = backfill_id
        super().__init__(f"no backfill with id {backfill_id}")


@dataclass(frozen=True)
class BackfillPlan:
    """A checked request: the schedule, its zone, the range and the due times it holds."""

    periodic_task: PeriodicTask
    zone: str
    start: datetime
    end: datetime
    overlap: str
    times: list[datetime]

    @property
    def total(self) -> int:
        return len(self.times)

    def as_dict(self, *, shown: int = 10) -> dict[str, Any]:
        """The plan as JSON: the count, the first and last runs, the first `shown` runs."""
        return {
            "periodic_task_name": self.periodic_task.name,
            "timezone": self.zone,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "overlap": self.overlap,
            "total": self.total,
            "first": self.times[0].isoformat() if self.times else None,
            "last": self.times[-1].isoformat() if self.times else None,
            "runs": [run.isoformat() for run in self.times[:shown]],
        }


def backfill_run_id(periodic_task_id: int, due: datetime) -> str:
    """The task id of a backfilled run: the id beat gives the run of that schedule due at that
    time (scheduler/schedules/timing.py), so a run beat made already, or an earlier backfill,
    is not published again."""
    return run_id(periodic_task_id, due)


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def backfill_moment(value: datetime | str | None, *, field: str, zone: str) -> datetime:
    """A time of a range: ISO 8601 text or a datetime; without an offset, in `zone`."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = (value or "").strip()
        if not text:
            raise ScheduleError.on(field, f"a date or time is required ({_TIME_EXAMPLE})")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError.on(
                field, f"{text!r} is not an ISO 8601 date or time ({_TIME_EXAMPLE})"
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A wall time of the schedule's zone: in a DST fold, its first occurrence.
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ScheduleError.on(
            field, f"{moment.isoformat()} is outside the calendar once in UTC (years 1 to 9999)"
        ) from None
    return moment


def backfill_plan(
    *,
    name: str,
    start: datetime | str | None,
    end: datetime | str | None,
    overlap: str | None = None,
) -> BackfillPlan:
    """Check a backfill of periodic task `name` over [start, end] and list its runs; writes
    nothing. ScheduleNotFound for an unknown name; a ScheduleError naming each wrong field
    (`from`, `to`, `overlap`, `schedule`, `task`) otherwise."""
    periodic_task = schedule_get(name)
    schedule_require_catalog(periodic_task, "backfilled")
    schedule = periodic_task_schedule(periodic_task, describe=False)
    if schedule is None:
        what = "a solar schedule" if periodic_task.solar is not None else "this schedule"
        raise ScheduleError.on(
            "schedule",
            f"{name!r} runs on {what}, whose times cannot be listed: it cannot be backfilled",
        )
    errors: dict[str, list[str]] = {}
    moments: dict[str, datetime] = {}
    for field, value in (("from", start), ("to", end)):
        try:
            moments[field] = backfill_moment(value, field=field, zone=schedule.timezone)
        except ScheduleError as exc:
            errors.update(exc.errors)
    policy = overlap or DEFAULT_OVERLAP
    if policy not in OverlapPolicy.values:
        errors["overlap"] = [
            f"{policy!r} is not one of {', '.join(str(value) for value in OverlapPolicy.values)}"
        ]
    if errors:
        raise ScheduleError(errors)
    first, last = moments["from"], moments["to"]
    if last < first:
        raise ScheduleError.on(
            "to", f"{last.isoformat()} is before from ({first.isoformat()}): nothing to run"
        )
    times = periodic_task_times_between(periodic_task, first, last, BACKFILL_MAX_RUNS)
    if len(times) > BACKFILL_MAX_RUNS:
        count = periodic_task_times_count(periodic_task, first, last, cap=COUNT_CAP)
        held = f"more than {COUNT_CAP:,}" if count > COUNT_CAP else f"{count:,}"
        raise ScheduleError.on(
            "to",
            f"the range holds {held} runs; at most {BACKFILL_MAX_RUNS:,}: backfill a shorter "
            "range, or several",
        )
    return BackfillPlan(
        periodic_task=periodic_task,
        zone=schedule.timezone,
        start=first,
        end=last,
        overlap=policy,
        times=times,
    )


def backfill_start(
    *,
    name: str,
    start: datetime | str | None,
    end: datetime | str | None,
    overlap: str | None = None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> Backfill:
    """Backfill periodic task `name` over [start, end]: the row, its audit entry, and the task
    that publishes its runs, queued once committed. Errors as `backfill_plan`'s; a range with no
    run of the schedule is refused too (on `from`)."""
    plan = backfill_plan(name=name, start=start, end=end, overlap=overlap)
    periodic_task = plan.periodic_task
    if not plan.times:
        raise ScheduleError.on(
            "from",
            f"no run of {name!r} is due from {plan.start.isoformat()} to "
            f"{plan.end.isoformat()}: nothing to backfill",
        )
    with transaction.atomic():
        backfill = Backfill.objects.create(
            periodic_task=periodic_task,
            periodic_task_name=periodic_task.name,
            start=plan.start,
            end=plan.end,
            overlap=plan.overlap,
            total=plan.total,
            requested_by=actor_of(actor),
            source=source,
        )
        summary = (
            f"backfill {backfill.pk}: {plan.total} runs from {plan.start.isoformat()} to "
            f"{plan.end.isoformat()} (overlap {plan.overlap})"
        )
        change_record(
            periodic_task,
            AuditEntry.Action.BACKFILLED,
            {"backfill": [None, summary]},
            actor=actor,
            actor_name=actor_name,
            source=source,
            backfill_id=backfill.pk,
            runs=plan.total,
        )
        transaction.on_commit(lambda: _queue(backfill))
    return backfill


def _queue(backfill: Backfill) -> None:
    kwargs = {"backfill_id": backfill.pk}
    if not settings.CELERY_ENABLED:
        # No broker in this deployment: the runs are made here, one after the other.
        app.tasks[BACKFILL_TASK].apply(kwargs=kwargs, throw=False)
        return
    try:
        app.send_task(
            BACKFILL_TASK,
            kwargs=kwargs,
            queue=queue_for(BACKFILL_TASK),
            kwargsrepr=json.dumps(kwargs),
        )
    except Exception as exc:
        # The row is committed: it must say that its runs never left, and the caller hears why.
        _finish(backfill, status=Backfill.Status.FAILED, error=_queue_error(exc))
        raise


def _queue_error(exc: Exception) -> str:
    return f"could not be queued: {type(exc).__name__}: {exc}"


def backfill_get(backfill_id: int) -> Backfill:
    try:
        return Backfill.objects.select_related("requested_by").get(pk=backfill_id)
    except Backfill.DoesNotExist:
        raise BackfillNotFound(backfill_id) from None


# --- Publishing (the `scheduler.backfill` task's body) ------------------------------------------


def backfill_publish(*, backfill_id: int) -> Backfill:
    """Publish the runs of backfill `backfill_id` that were not made before, a chunk at a time,
    its progress saved and sent live after each chunk. A backfill that finished already (a
    redelivered task) is left as it is."""
    backfill = backfill_get(backfill_id)
    if backfill.status != Backfill.Status.RUNNING:
        return backfill
    try:
        _publish_runs(backfill)
    except Exception as exc:
        logger.exception("backfill %s failed", backfill.pk)
        _finish(backfill, status=Backfill.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    _finish(backfill, status=Backfill.Status.DONE)
    return backfill


def _publish_runs(backfill: Backfill) -> None:
    periodic_task = (
        PeriodicTask.objects.select_related("interval", "crontab", "clocked", "solar", "options")
        .filter(pk=backfill.periodic_task_id)
        .first()
    )
    if periodic_task is None:
        raise ScheduleError.on(
            "periodic_task", f"{backfill.periodic_task_name!r} was deleted: no runs were made"
        )
    # Listed again from the schedule's rows: the request checked the same list, so it is not
    # over the limit unless the schedule changed since (then it is cut at the limit).
    times = periodic_task_times_between(
        periodic_task, backfill.start, backfill.end, BACKFILL_MAX_RUNS
    )[:BACKFILL_MAX_RUNS]
    args = json.loads(periodic_task.args or "[]")
    kwargs = json.loads(periodic_task.kwargs or "{}")
    backfill.total = len(times)
    backfill.published = backfill.existing = 0
    for start in range(0, len(times), CHUNK):
        chunk = times[start : start + CHUNK]
        ids = [backfill_run_id(periodic_task.pk, due) for due in chunk]
        made = _runs_made(ids)
        wanted = [
            (due, task_id) for due, task_id in zip(chunk, ids, strict=True) if task_id not in made
        ]
        _send(backfill, periodic_task, wanted, args=args, kwargs=kwargs)
        backfill.published += len(wanted)
        backfill.existing += len(chunk) - len(wanted)
        _progress(backfill)


def _runs_made(ids: list[str]) -> set[str]:
    """Those of `ids` a backfill made before: stored, claimed by a worker, or queued (an
    earlier backfill's message still waiting in the queue has its queued event)."""
    made = set(TaskResult.objects.filter(task_id__in=ids).values_list("task_id", flat=True))
    made |= set(
        TaskEvent.objects.filter(task_id__in=ids, type="task.queued").values_list(
            "task_id", flat=True
        )
    )
    rest = [task_id for task_id in ids if task_id not in made]
    if rest:
        pipe = cast(Any, get_redis()).pipeline(transaction=False)
        for task_id in rest:
            pipe.exists(claim_key(task_id, 0))
        made |= {task_id for task_id, held in zip(rest, pipe.execute(), strict=True) if held}
    return made


def _send(
    backfill: Backfill,
    periodic_task: PeriodicTask,
    runs: Iterable[tuple[datetime, str]],
    *,
    args: list[Any],
    kwargs: dict[str, Any],
) -> None:
    runs = list(runs)
    if not runs:
        return
    try:
        stored = json.loads(periodic_task.headers or "{}")
    except ValueError:
        stored = {}
    options: dict[str, Any] = {
        "queue": periodic_task.queue or queue_for(periodic_task.task),
        "kwargsrepr": json.dumps(kwargs),
    }
    # As beat sends a run of the row (its exchange, routing key and priority), but no expiry:
    # a backfilled run is late by design, and its expiry would drop the runs buffered behind.
    for name in ("exchange", "routing_key", "priority"):
        value = getattr(periodic_task, name)
        if value is not None and value != "":
            options[name] = value
    if not settings.CELERY_ENABLED:
        for due, task_id in runs:
            app.tasks[periodic_task.task].apply(
                tuple(args),
                kwargs,
                task_id=task_id,
                headers=_headers(backfill, periodic_task, due, stored),
                throw=False,
            )
        return
    # One producer (one broker connection) for the chunk.
    with app.producer_or_acquire() as producer:
        for due, task_id in runs:
            app.send_task(
                periodic_task.task,
                args=args,
                kwargs=kwargs,
                task_id=task_id,
                headers=_headers(backfill, periodic_task, due, stored),
                producer=producer,
                **options,
            )


def _headers(
    backfill: Backfill, periodic_task: PeriodicTask, due: datetime, stored: Any
) -> dict[str, Any]:
    return {
        **(stored if isinstance(stored, dict) else {}),
        protocol.PERIODIC_TASK_HEADER: periodic_task.name,
        protocol.SCHEDULED_FOR_HEADER: _iso_utc(due),
        protocol.PUBLISHED_AT_HEADER: _iso_utc(timezone.now()),
        protocol.BACKFILL_ID_HEADER: backfill.pk,
        protocol.OVERLAP_POLICY_HEADER: backfill.overlap,
    }


def _progress(backfill: Backfill) -> None:
    Backfill.objects.filter(pk=backfill.pk).update(
        total=backfill.total, published=backfill.published, existing=backfill.existing
    )
    _announce(backfill, PROGRESS_EVENT)


def _finish(backfill: Backfill, *, status: str, error: str = "") -> None:
    backfill.status = status
    backfill.error = error
    backfill.finished_at = timezone.now()
    Backfill.objects.filter(pk=backfill.pk).update(
        status=status,
        error=error,
        finished_at=backfill.finished_at,
        total=backfill.total,
        published=backfill.published,
        existing=backfill.existing,
    )
    _announce(backfill, FINISHED_EVENT)


def backfill_as_dict(backfill: Backfill) -> dict[str, Any]:
    """A backfill and its progress, as the API, the CLI's JSON and the live events show it."""
    return {
        "id": backfill.pk,
        "periodic_task_name": backfill.periodic_task_name,
        "from": backfill.start.isoformat(),
        "to": backfill.end.isoformat(),
        "overlap": backfill.overlap,
        "status": backfill.status,
        "total": backfill.total,
        "published": backfill.published,
        "existing": backfill.existing,
        "error": backfill.error,
        "source": backfill.source,
        "created_at": backfill.created_at.isoformat() if backfill.created_at else None,
        "finished_at": backfill.finished_at.isoformat() if backfill.finished_at else None,
    }


def _announce(backfill: Backfill, event_type: str) -> None:
    done = backfill.published + backfill.existing
    said = f"{done}/{backfill.total} runs"
    if backfill.existing:
        said += f" ({backfill.existing} made before)"
    if backfill.status != Backfill.Status.RUNNING:
        said += f": {backfill.status}"
    if backfill.error:
        said += f" ({backfill.error})"
    data = {
        **backfill_as_dict(backfill),
        "message": f"backfill {backfill.pk} of {backfill.periodic_task_name!r}: {said}",
    }
    try:
        publish(
            event_type,
            data,
            source="scheduler",
            priority="high" if backfill.status == Backfill.Status.FAILED else "normal",
            object=(OBJECT_TYPE, backfill.pk),
        )
    except Exception:
        # Progress is on the row too: a lost event only delays what a page shows.
        logger.warning("could not send %s of backfill %s", event_type, backfill.pk, exc_info=True)
