"""The Python API: schedule, run, cancel and look up catalog tasks from code.

    from scheduler.client import schedule, run, cancel, list_schedules, status

    nightly = schedule("scheduler.ping", "every day at 2am", timezone="Europe/London")
    once = schedule("agents.post", datetime(2027, 1, 5, 9, tzinfo=UTC),
                    params={"agent": "poster", "topic": "news"})
    every = schedule("scheduler.ping", timedelta(minutes=5), name="ping")
    done = run("scheduler.ping", wait=30)        # RunResult(state="SUCCESS", ...)
    cancel(nightly)                              # or its name, or its id

The same services as the admin, the CLI and the API (scheduler/services/): the same catalog
check of the task and its parameters, the same schedule parser, the same audit trail (source
"python"). Wrong input raises `ScheduleError` (a ValueError; `.errors` maps each field to its
messages) with nothing saved or queued; an unknown schedule raises `ScheduleNotFound`.

Each function has an async twin (`aschedule`, `arun`, `acancel`, `alist_schedules`,
`astatus`) for code on an event loop. The names of the seeds' schedulers are here too:
`schedule_task`, `schedule_one_time`, `schedule_recurring`, `cancel_task`,
`list_scheduled_tasks`, and `get_scheduler()`, an object with all of them as methods.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import Q
from django_celery_beat.models import PeriodicTask

from scheduler import selectors, services
from scheduler.catalog import UnknownTaskError, load_catalog
from scheduler.models import Source
from scheduler.protocol import FINISHED_STATES
from scheduler.schedules import schedule_describe
from scheduler.schedules.rows import options_of
from scheduler.services import ScheduleError, ScheduleNotFound, TaskNotFound, User

__all__ = [
    "RunResult",
    "Schedule",
    "ScheduleError",
    "ScheduleNotFound",
    "Scheduler",
    "TaskNotFound",
    "When",
    "acancel",
    "alist_schedules",
    "arun",
    "aschedule",
    "astatus",
    "cancel",
    "cancel_task",
    "get_scheduler",
    "list_scheduled_tasks",
    "list_schedules",
    "run",
    "schedule",
    "schedule_one_time",
    "schedule_recurring",
    "schedule_task",
    "status",
]

# When a schedule runs: a phrase or a cron line ("every monday at 8am", "*/15 * * * *",
# "in 10 minutes"), a timedelta (an interval: every that long) or a datetime (once, then).
When = str | timedelta | datetime

# A Celery task id as the API's routes take it (scheduler/api/urls.py).
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}")
# A run waited on is read again after these many seconds, doubling up to the last.
_POLL_FIRST, _POLL_MAX = 0.05, 0.5
_UNITS = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


@dataclass(frozen=True)
class Schedule:
    """A periodic task as it is stored, read back after every write."""

    id: int
    name: str
    task: str
    params: dict[str, Any]
    # How it runs, in words ("every day at 02:00 (Europe/London)"), and as written ("" when it
    # was made on a stock schedule in the admin).
    description: str
    phrase: str
    kind: str  # "interval", "crontab", "clocked" (once) or "solar"
    timezone: str
    queue: str
    enabled: bool
    one_off: bool
    next_run: datetime | None
    # The domain object it belongs to (("agent", "3")): its task's parameters name it.
    owner: tuple[str, str] | None


@dataclass(frozen=True)
class RunResult:
    """One run as Celery's result backend reports it; an id nobody stored yet is PENDING."""

    task_id: str
    state: str
    task: str | None
    result: Any
    error: str | None
    date_done: datetime | None
    worker: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def successful(self) -> bool:
        return self.state == "SUCCESS"


# --- Reading back --------------------------------------------------------------------------------


def _kind(periodic_task: PeriodicTask) -> str:
    for kind in ("interval", "crontab", "clocked", "solar"):
        if getattr(periodic_task, f"{kind}_id"):
            return kind
    return ""


def _params(periodic_task: PeriodicTask) -> dict[str, Any]:
    value = services.params_from_json(periodic_task.kwargs)
    return value if isinstance(value, dict) else {}


def _schedule_of(periodic_task: PeriodicTask) -> Schedule:
    options = options_of(periodic_task)
    return Schedule(
        id=periodic_task.pk,
        name=periodic_task.name,
        task=periodic_task.task,
        params=_params(periodic_task),
        description=schedule_describe(periodic_task),
        phrase=options.phrase if options is not None else "",
        kind=_kind(periodic_task),
        timezone=options.timezone if options is not None else "UTC",
        queue=periodic_task.queue or "",
        enabled=bool(periodic_task.enabled),
        one_off=bool(periodic_task.one_off),
        next_run=selectors.schedule_next_run(periodic_task),
        owner=selectors.schedule_owner_of(periodic_task),
    )


def _read(pk: int) -> Schedule:
    periodic_task = selectors.schedule_by_id(pk)
    if periodic_task is None:
        raise ScheduleNotFound(str(pk))
    return _schedule_of(periodic_task)


def _run_result(task_id: str) -> RunResult:
    found = selectors.task_status(task_id)
    return RunResult(
        task_id=task_id,
        state=found.state,
        task=found.task_name,
        result=found.result,
        error=found.error,
        date_done=found.date_done,
        worker=found.worker,
    )


# --- When -> a phrase the parser reads -----------------------------------------------------------


def _count(seconds: int) -> str:
    """'5 minutes', '1 hour', '90 seconds': `seconds` in the largest unit that divides it."""
    for unit, size in _UNITS:
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    raise AssertionError("a second divides every whole number of seconds")


def _whole_seconds(delta: timedelta) -> int:
    seconds = delta.total_seconds()
    if seconds <= 0 or seconds != int(seconds):
        raise ScheduleError.on(
            "schedule", f"a timedelta must be a positive whole number of seconds, not {delta!r}"
        )
    return int(seconds)


def _phrase(when: object, *, once: bool = False) -> str:
    """What `when` says as the schedule parser reads it. A timedelta repeats (every that long),
    or with `once` runs once that long from now."""
    if isinstance(when, str):
        return when
    if isinstance(when, timedelta):
        seconds = _whole_seconds(when)
        return f"in {_count(seconds)}" if once else f"every {_count(seconds)}"
    if isinstance(when, datetime):
        # ISO 8601: with its offset; a naive one is a wall time in the schedule's zone.
        return when.isoformat()
    raise ScheduleError.on(
        "schedule",
        "expected a phrase or cron line (str), a timedelta (every that long) or a datetime "
        f"(once), not {type(when).__name__}",
    )


def _default_name(task: str, phrase: str) -> str:
    """'<task> <phrase>', made unique with ' #2', ' #3' ... when a schedule has it already."""
    base = f"{task} {' '.join(phrase.split())}"[: services.NAME_MAX_LENGTH - 6]
    taken = set(
        PeriodicTask.objects.filter(Q(name=base) | Q(name__startswith=f"{base} #")).values_list(
            "name", flat=True
        )
    )
    if base not in taken:
        return base
    number = 2
    while f"{base} #{number}" in taken:
        number += 1
    return f"{base} #{number}"


# --- Schedules -----------------------------------------------------------------------------------


def schedule(
    task: str,
    when: When,
    *,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    timezone: str = "UTC",
    queue: str | None = None,
    description: str = "",
    enabled: bool = True,
    overlap: str | None = None,
    misfire: str | None = None,
    jitter: int | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    max_runs: int | None = None,
    replace: bool = False,
    actor: User = None,
) -> Schedule:
    """Schedule catalog task `task` with `params` (checked against its declared parameters).

    `when`: a phrase or cron line read in `timezone` ("every monday at 8am", "0 2 * * *",
    "in 10 minutes", "2027-01-15 14:30"), a timedelta (every that long) or a datetime (once;
    a naive one is read in `timezone`). `name`: the schedule's unique name; by default the task
    and the phrase. With `replace`, a schedule of that name is changed to this one instead of
    refused. `overlap`, `misfire`, `jitter`, `start_time`, `end_time` and `max_runs` are the
    policies the admin shows (None: the default). Raises ScheduleError naming the wrong field,
    with nothing saved.
    """
    phrase = _phrase(when)
    chosen = name if name is not None else _default_name(task, phrase)
    fields: dict[str, Any] = {
        "task": task,
        "schedule": phrase,
        "params": dict(params) if isinstance(params, Mapping) else params,
        "tz": timezone,
        "queue": queue,
        "description": description,
        "enabled": enabled,
        "overlap": overlap,
        "misfire": misfire,
        "jitter": jitter,
        "start_time": start_time,
        "end_time": end_time,
        "max_runs": max_runs,
        "actor": actor,
        "source": Source.PYTHON,
    }
    if replace and PeriodicTask.objects.filter(name=chosen).exists():
        periodic_task = services.schedule_update(name=chosen, **fields)
    else:
        periodic_task = services.schedule_create(name=chosen, **fields)
    return _read(periodic_task.pk)


def _periodic_task(target: str | int | Schedule) -> PeriodicTask:
    if isinstance(target, Schedule):
        target = target.id
    if isinstance(target, bool) or not isinstance(target, str | int):
        raise ScheduleError.on(
            "schedule", f"expected a schedule's name, id or Schedule, not {type(target).__name__}"
        )
    if isinstance(target, int):
        found = selectors.schedule_by_id(target)
        if found is None:
            raise ScheduleNotFound(str(target))
        return found
    return services.schedule_get(target)


def cancel(target: str | int | Schedule, *, actor: User = None) -> Schedule:
    """Delete a schedule (by name, id, or the Schedule `schedule` returned); returns it as it
    was. Runs already queued are not stopped (`revoke` in the CLI and the API does that).
    ScheduleNotFound when there is no such schedule."""
    periodic_task = _periodic_task(target)
    before = _schedule_of(periodic_task)
    services.schedule_delete(name=periodic_task.name, actor=actor, source=Source.PYTHON)
    return before


def list_schedules(
    *,
    task: str | None = None,
    enabled: bool | None = None,
    queue: str | None = None,
    search: str | None = None,
    owner: tuple[str, object] | None = None,
    limit: int | None = None,
) -> list[Schedule]:
    """Schedules by name: all, or those of catalog task `task`, enabled or not, on `queue`,
    whose name contains `search`, belonging to `owner` (("agent", 3)); at most `limit`."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ScheduleError.on("limit", f"must be a whole number, 0 or more, not {limit!r}")
    rows = selectors.periodic_tasks_listed(enabled=enabled)
    if task is not None:
        rows = rows.filter(task=task)
    if queue is not None:
        rows = rows.filter(queue=queue)
    if search:
        rows = rows.filter(name__icontains=search)
    if owner is not None:
        object_type, object_id = owner
        owned = selectors.schedule_names_owned(object_type, [object_id])
        rows = rows.filter(name__in=owned.get(str(object_id), []))
    if limit is not None:
        rows = rows[:limit]
    return [_schedule_of(row) for row in rows]


# --- Runs ----------------------------------------------------------------------------------------


def _check_wait(wait: float | None) -> None:
    if wait is None:
        return
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not wait >= 0:
        raise ScheduleError.on("wait", f"must be a number of seconds, 0 or more, not {wait!r}")


def _queue_run(
    task: str, params: Mapping[str, Any] | None, *, queue: str | None, actor: User
) -> str:
    return services.task_run(
        task=task,
        params=dict(params) if isinstance(params, Mapping) else params,
        queue=queue,
        actor=actor,
        source=Source.PYTHON,
    )


def run(
    task: str,
    params: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    wait: float | None = None,
    actor: User = None,
) -> RunResult:
    """Run catalog task `task` once, now (on its queue, or `queue`), audited.

    Without `wait` it returns once the run is queued (state PENDING); with `wait` seconds, once
    the run has finished or the time is up, with the state it has then. Queued when the
    surrounding transaction commits, so waiting inside one is refused (ScheduleError on `wait`),
    as are a task outside the catalog and wrong parameters: nothing is queued.
    """
    _check_wait(wait)
    if wait is not None and transaction.get_connection().in_atomic_block:
        raise ScheduleError.on(
            "wait",
            "the run is queued when the surrounding transaction commits: wait outside it, or "
            "call status(task_id) after the commit",
        )
    task_id = _queue_run(task, params, queue=queue, actor=actor)
    if wait is None:
        return RunResult(task_id, "PENDING", task, None, None, None, None)
    deadline = time.monotonic() + wait
    delay = _POLL_FIRST
    found = _run_result(task_id)
    while not found.finished and (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)
        found = _run_result(task_id)
    return found


def status(task_id: str) -> RunResult:
    """The state of run `task_id` as the result backend has it (PENDING for an id it does not
    know: Celery cannot tell queued from unknown). ScheduleError on a malformed id."""
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise ScheduleError.on(
            "task_id",
            f"{task_id!r} is not a task id (letters, digits, '-', '_', '.', ':'; at most 255)",
        )
    return _run_result(task_id)


# --- Async twins ---------------------------------------------------------------------------------


async def aschedule(task: str, when: When, **options: Any) -> Schedule:
    """`schedule` from an event loop (the same arguments)."""
    return await sync_to_async(schedule)(task, when, **options)


async def acancel(target: str | int | Schedule, *, actor: User = None) -> Schedule:
    return await sync_to_async(cancel)(target, actor=actor)


async def alist_schedules(**filters: Any) -> list[Schedule]:
    return await sync_to_async(list_schedules)(**filters)


async def astatus(task_id: str) -> RunResult:
    return await sync_to_async(status)(task_id)


async def arun(
    task: str,
    params: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    wait: float | None = None,
    actor: User = None,
) -> RunResult:
    """`run` from an event loop: queued in a thread, waited on here (no thread held)."""
    _check_wait(wait)
    queued = await sync_to_async(run)(task, params, queue=queue, actor=actor)
    if wait is None:
        return queued
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    delay = _POLL_FIRST
    read = sync_to_async(_run_result)
    found = await read(queued.task_id)
    while not found.finished and (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _POLL_MAX)
        found = await read(queued.task_id)
    return found


# --- The seeds' names ----------------------------------------------------------------------------


def _seed_params(
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
) -> Mapping[str, Any] | None:
    """The seeds' `args` and `kwargs` as catalog parameters: positional arguments fill the
    task's declared parameters in their order."""
    if kwargs is not None and params is not None:
        raise ScheduleError.on("params", "give the parameters as params or kwargs, not both")
    given = params if params is not None else kwargs
    if not args:
        return given
    if isinstance(args, str) or not isinstance(args, Sequence):
        raise ScheduleError.on("args", f"must be a list or tuple, not {type(args).__name__}")
    try:
        declared = list(load_catalog().get(task).params.model_fields)
    except UnknownTaskError as exc:
        raise ScheduleError.on("task", str(exc)) from exc
    if len(args) > len(declared):
        names = ", ".join(declared) or "none"
        raise ScheduleError.on(
            "args",
            f"{task} takes {len(declared)} parameters ({names}): {len(args)} positional "
            "arguments were given",
        )
    merged = dict(given or {})
    for param, value in zip(declared, args, strict=False):
        if param in merged:
            raise ScheduleError.on("args", f"{param!r} is given twice (in args and by name)")
        merged[param] = value
    return merged


def _check_kind(phrase: str, *, tz: str, once: bool, caller: str) -> None:
    parsed = services.schedule_parse(schedule=phrase, tz=tz)
    if once and parsed.clocked is None:
        raise ScheduleError.on(
            "schedule",
            f"{phrase!r} repeats ({parsed.description}): {caller} takes one moment "
            "('in 10 minutes', 'tomorrow at 9am', a datetime or a timedelta from now)",
        )
    if not once and parsed.clocked is not None:
        raise ScheduleError.on(
            "schedule",
            f"{phrase!r} is one moment ({parsed.description}): {caller} takes a repeating "
            "schedule ('every 5 minutes', 'every day at 3am', a cron line, a timedelta)",
        )


class Scheduler:
    """What the seeds' `get_scheduler()` returns: the functions of this module as methods, with
    the seeds' names too, acting as `actor` and reading phrases in `timezone` by default."""

    def __init__(self, *, actor: User = None, timezone: str = "UTC") -> None:
        self.actor = actor
        self.timezone = timezone

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"actor": self.actor, "timezone": self.timezone, **options}

    def schedule(self, task: str, when: When, **options: Any) -> Schedule:
        return schedule(task, when, **self._options(options))

    def schedule_task(
        self,
        task: str,
        when: When,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> Schedule:
        """The seeds' `schedule_task(name, when, args=..., task_id=...)`: `task_id` is the
        schedule's name, `args` fill the task's parameters in their declared order."""
        if task_id is not None:
            options["name"] = task_id
        return self.schedule(task, when, params=_seed_params(task, args, kwargs, params), **options)

    def schedule_one_time(self, task: str, when: When, **options: Any) -> Schedule:
        """`schedule_task` for one moment only: a repeating `when` is refused (a timedelta is
        that long from now)."""
        phrase = _phrase(when, once=True)
        tz = options.get("timezone", self.timezone)
        _check_kind(phrase, tz=tz, once=True, caller="schedule_one_time")
        return self.schedule_task(task, phrase, **options)

    def schedule_recurring(self, task: str, when: When, **options: Any) -> Schedule:
        """`schedule_task` for a repeating schedule only: one moment is refused."""
        phrase = _phrase(when)
        tz = options.get("timezone", self.timezone)
        _check_kind(phrase, tz=tz, once=False, caller="schedule_recurring")
        return self.schedule_task(task, phrase, **options)

    def run(
        self,
        task: str,
        params: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        wait: float | None = None,
    ) -> RunResult:
        return run(task, params, queue=queue, wait=wait, actor=self.actor)

    def cancel(self, target: str | int | Schedule) -> Schedule:
        return cancel(target, actor=self.actor)

    cancel_task = cancel

    def list_schedules(self, **filters: Any) -> list[Schedule]:
        return list_schedules(**filters)

    list_scheduled_tasks = list_schedules

    def status(self, task_id: str) -> RunResult:
        return status(task_id)

    get_task_status = status

    async def aschedule(self, task: str, when: When, **options: Any) -> Schedule:
        return await aschedule(task, when, **self._options(options))

    async def arun(
        self,
        task: str,
        params: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        wait: float | None = None,
    ) -> RunResult:
        return await arun(task, params, queue=queue, wait=wait, actor=self.actor)

    async def acancel(self, target: str | int | Schedule) -> Schedule:
        return await acancel(target, actor=self.actor)

    async def alist_schedules(self, **filters: Any) -> list[Schedule]:
        return await alist_schedules(**filters)

    async def astatus(self, task_id: str) -> RunResult:
        return await astatus(task_id)


_default = Scheduler()


def get_scheduler() -> Scheduler:
    """The scheduler the module's functions use: no actor (audited as the Python API), UTC."""
    return _default


def schedule_task(
    task: str,
    when: When,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    task_id: str | None = None,
    **options: Any,
) -> Schedule:
    """The seeds' name: `schedule` with `args`/`kwargs` as parameters and `task_id` as name."""
    return _default.schedule_task(task, when, args=args, kwargs=kwargs, task_id=task_id, **options)


def schedule_one_time(task: str, when: When, **options: Any) -> Schedule:
    """The seeds' name: `schedule` for one moment ("tomorrow at 2am", a datetime)."""
    return _default.schedule_one_time(task, when, **options)


def schedule_recurring(task: str, when: When, **options: Any) -> Schedule:
    """The seeds' name: `schedule` for a repeating schedule ("every day at 3am")."""
    return _default.schedule_recurring(task, when, **options)


def cancel_task(target: str | int | Schedule) -> Schedule:
    """The seeds' name for `cancel`."""
    return cancel(target)


def list_scheduled_tasks(**filters: Any) -> list[Schedule]:
    """The seeds' name for `list_schedules`."""
    return list_schedules(**filters)
