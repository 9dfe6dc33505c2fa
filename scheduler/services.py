"""Writes of the scheduler app. Every create/update/delete goes through a function here.

The admin, the CLI and the API all call these: each validates the catalog name, the parameters
and the schedule, saves atomically, records an audit entry and an event, and raises
`ScheduleError` (naming the field) without saving anything when the input is wrong.
"""

from __future__ import annotations

import ast
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)
from django_celery_results.models import TaskResult

from config.queues import QUEUES
from scheduler.catalog import ParameterError, UnknownTaskError, load_catalog
from scheduler.events import event_record
from scheduler.models import AuditEntry, ScheduleOptions, Source, TaskEvent
from scheduler.parsing import (
    CrontabSpec,
    IntervalSpec,
    ParsedSchedule,
    Period,
    ScheduleParseError,
    describe_crontab,
    describe_interval,
    parse_schedule,
    zone_named,
)
from scheduler.policies import MisfirePolicy, OverlapPolicy

User = AbstractBaseUser | AnonymousUser | None

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000


class ScheduleError(ValueError):
    """Input that cannot be saved. `errors` maps a field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()))

    @classmethod
    def on(cls, field: str, message: str) -> ScheduleError:
        return cls({field: [message]})


class ScheduleNotFound(LookupError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no periodic task named {name!r}")


# --- Validation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidatedTask:
    task: str
    params: dict[str, Any]
    queue: str


def params_from_json(text: str | None) -> Any:
    """Parameters written as JSON (CLI, admin); a ScheduleError naming `params` if malformed."""
    if text is None or not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScheduleError.on(
            "params", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc


def task_validate(*, task: str, params: Any, queue: str | None = None) -> ValidatedTask:
    """The catalog entry exists, the parameters match it, the queue is one of ours."""
    errors: dict[str, list[str]] = {}
    try:
        entry = load_catalog().get(task)
    except UnknownTaskError as exc:
        raise ScheduleError.on("task", str(exc)) from exc
    try:
        checked = entry.validate(params)
    except ParameterError as exc:
        errors["params"] = [str(exc)]
        checked = {}
    if queue and queue not in QUEUES:
        errors["queue"] = [f"unknown queue {queue!r} (queues: {', '.join(QUEUES)})"]
    if errors:
        raise ScheduleError(errors)
    return ValidatedTask(task=task, params=checked, queue=queue or entry.queue)


def schedule_parse(
    *, schedule: str, tz: str = "UTC", now: datetime | None = None
) -> ParsedSchedule:
    try:
        zone_named(tz)
    except ScheduleParseError as exc:
        raise ScheduleError.on("timezone", str(exc)) from exc
    try:
        parsed = parse_schedule(schedule, tz=tz, now=now)
    except ScheduleParseError as exc:
        raise ScheduleError.on("schedule", str(exc)) from exc
    if parsed.clocked is not None and parsed.clocked <= (now or timezone.now()):
        raise ScheduleError.on(
            "schedule", f"{schedule!r} is in the past ({parsed.clocked.isoformat()})"
        )
    return parsed


def _validate_name(name: str, *, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ScheduleError.on("name", "a name is required")
    if len(name) > NAME_MAX_LENGTH:
        raise ScheduleError.on("name", f"is longer than {NAME_MAX_LENGTH} characters")
    clash = PeriodicTask.objects.filter(name=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ScheduleError.on("name", f"a periodic task named {name!r} already exists")
    return name


def _choice(value: str, choices: type[OverlapPolicy] | type[MisfirePolicy], field: str) -> str:
    if value not in choices.values:
        raise ScheduleError.on(
            field, f"{value!r} is not one of {', '.join(str(v) for v in choices.values)}"
        )
    return value


# --- Schedule rows -------------------------------------------------------------------------------


def _schedule_fields(parsed: ParsedSchedule) -> dict[str, Any]:
    """django-celery-beat schedule columns for `parsed`, reusing existing schedule rows."""
    fields: dict[str, Any] = {
        "interval": None,
        "crontab": None,
        "clocked": None,
        "solar": None,
        "one_off": False,
    }
    if parsed.interval is not None:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=parsed.interval.every, period=parsed.interval.period
        )
    elif parsed.crontab is not None:
        spec = parsed.crontab
        lookup = {
            "minute": spec.minute,
            "hour": spec.hour,
            "day_of_week": spec.day_of_week,
            "day_of_month": spec.day_of_month,
            "month_of_year": spec.month_of_year,
            "timezone": parsed.timezone,
        }
        # No unique constraint on crontab rows (the admin can add duplicates): take any match.
        fields["crontab"] = CrontabSchedule.objects.filter(**lookup).order_by(
            "pk"
        ).first() or CrontabSchedule.objects.create(**lookup)
    else:
        assert parsed.clocked is not None
        fields["clocked"], _ = ClockedSchedule.objects.get_or_create(clocked_time=parsed.clocked)
        fields["one_off"] = True
    return fields


def schedule_describe(periodic_task: PeriodicTask) -> str:
    """What the schedule of a periodic task is, in words (also for rows made in the stock admin)."""
    options = _options_of(periodic_task)
    # A one-off's phrase may be relative ('in 5 minutes'): read again now, it would move.
    if options is not None and options.phrase and periodic_task.clocked is None:
        try:
            return parse_schedule(options.phrase, tz=options.timezone).description
        except ScheduleParseError:
            pass
    if periodic_task.interval is not None:
        interval = periodic_task.interval
        if interval.period not in ("days", "hours", "minutes", "seconds"):
            return f"every {interval.every} {interval.period}"
        period = cast("Period", interval.period)
        return describe_interval(IntervalSpec(every=interval.every, period=period))
    if periodic_task.crontab is not None:
        row = periodic_task.crontab
        spec = CrontabSpec(
            minute=row.minute,
            hour=row.hour,
            day_of_week=row.day_of_week,
            day_of_month=row.day_of_month,
            month_of_year=row.month_of_year,
        )
        try:
            return f"{describe_crontab(spec)} ({row.timezone})"
        except Exception:  # a hand-made row cron-descriptor cannot read
            return spec.expression
    if periodic_task.clocked is not None:
        return f"once at {periodic_task.clocked.clocked_time.isoformat()}"
    return _stock_schedule(periodic_task)


def _snapshot(periodic_task: PeriodicTask, options: ScheduleOptions | None) -> dict[str, Any]:
    return {
        "task": periodic_task.task,
        "schedule": options.phrase
        if options and options.phrase
        else _stock_schedule(periodic_task),
        "timezone": options.timezone if options else "UTC",
        "params": json.loads(periodic_task.kwargs or "{}"),
        "queue": periodic_task.queue or "",
        "enabled": periodic_task.enabled,
        "description": periodic_task.description,
        "overlap": options.overlap if options else OverlapPolicy.ALLOW.value,
        "misfire": options.misfire if options else MisfirePolicy.RUN_ONCE.value,
    }


def _stock_schedule(periodic_task: PeriodicTask) -> str:
    for field in ("interval", "crontab", "clocked", "solar"):
        row = getattr(periodic_task, field)
        if row is not None:
            return str(row)
    return ""


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {
        key: [before.get(key), after.get(key)] for key in after if before.get(key) != after.get(key)
    }


def _actor(user: User) -> Any:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def _audit(
    periodic_task: PeriodicTask | None,
    *,
    name: str,
    action: str,
    actor: User,
    source: str,
    changes: dict[str, Any],
) -> AuditEntry:
    return AuditEntry.objects.create(
        periodic_task=periodic_task,
        periodic_task_name=name,
        action=action,
        actor=_actor(actor),
        source=source,
        changes=changes,
    )


def _event(action: str, periodic_task: PeriodicTask, *, message: str = "", **payload: Any) -> None:
    event_record(
        type=f"schedule.{action}",
        task_name=periodic_task.task,
        periodic_task_name=periodic_task.name,
        message=message,
        payload=payload,
    )


def schedule_get(name: str) -> PeriodicTask:
    try:
        return PeriodicTask.objects.select_related(
            "interval", "crontab", "clocked", "solar", "options"
        ).get(name=name)
    except PeriodicTask.DoesNotExist:
        raise ScheduleNotFound(name) from None


def _options_of(periodic_task: PeriodicTask) -> ScheduleOptions | None:
    try:
        options: ScheduleOptions = cast(Any, periodic_task).options
    except ScheduleOptions.DoesNotExist:
        return None
    return options


# --- Services ------------------------------------------------------------------------------------


@transaction.atomic
def schedule_create(
    *,
    name: str,
    task: str,
    schedule: str,
    params: Any = None,
    tz: str = "UTC",
    queue: str | None = None,
    description: str = "",
    overlap: str | None = None,
    misfire: str = MisfirePolicy.RUN_ONCE,
    enabled: bool = True,
    actor: User = None,
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Create a periodic task running catalog task `task` on `schedule` (English or cron)."""
    errors: dict[str, list[str]] = {}
    checked: ValidatedTask | None = None
    parsed: ParsedSchedule | None = None
    # Collect every field's errors at once, so a form can show them all.
    for field, check in (
        ("name", lambda: _validate_name(name)),
        ("task", lambda: task_validate(task=task, params=params, queue=queue)),
        ("schedule", lambda: schedule_parse(schedule=schedule, tz=tz)),
        ("overlap", lambda: overlap is None or _choice(overlap, OverlapPolicy, "overlap")),
        ("misfire", lambda: _choice(misfire, MisfirePolicy, "misfire")),
        ("description", lambda: _check_description(description)),
    ):
        try:
            result = check()
        except ScheduleError as exc:
            errors.update(exc.errors)
            continue
        if field == "task":
            checked = result  # type: ignore[assignment]
        elif field == "schedule":
            parsed = result  # type: ignore[assignment]
    if errors:
        raise ScheduleError(errors)
    assert checked is not None
    assert parsed is not None
    entry = load_catalog().get(task)
    periodic_task = PeriodicTask(
        name=name.strip(),
        task=task,
        kwargs=json.dumps(checked.params),
        queue=checked.queue,
        description=description,
        enabled=enabled,
        **_schedule_fields(parsed),
    )
    periodic_task.save()
    options = ScheduleOptions.objects.create(
        periodic_task=periodic_task,
        phrase=" ".join(schedule.split()),
        timezone=parsed.timezone,
        overlap=overlap or entry.overlap,
        misfire=misfire,
    )
    after = _snapshot(periodic_task, options)
    _audit(
        periodic_task,
        name=periodic_task.name,
        action=AuditEntry.Action.CREATED,
        actor=actor,
        source=source,
        changes=_diff({}, after),
    )
    _event("created", periodic_task, message=parsed.description, source=source)
    return periodic_task


def _check_description(description: str) -> None:
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ScheduleError.on("description", f"is longer than {DESCRIPTION_MAX_LENGTH} characters")


_UNSET: Any = object()


@transaction.atomic
def schedule_update(
    *,
    name: str,
    new_name: str | None = None,
    task: str | None = None,
    schedule: str | None = None,
    params: Any = _UNSET,
    tz: str | None = None,
    queue: str | None = None,
    description: str | None = None,
    overlap: str | None = None,
    misfire: str | None = None,
    enabled: bool | None = None,
    actor: User = None,
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Change the given fields of periodic task `name`; the others stay as they are."""
    periodic_task = schedule_get(name)
    periodic_task = PeriodicTask.objects.select_for_update().get(pk=periodic_task.pk)
    options = _options_of(periodic_task)
    before = _snapshot(periodic_task, options)
    errors: dict[str, list[str]] = {}

    target_task = task or periodic_task.task
    target_params = before["params"] if params is _UNSET else params
    target_tz = tz or (options.timezone if options else "UTC")
    checked: ValidatedTask | None = None
    parsed: ParsedSchedule | None = None
    try:
        checked = task_validate(
            task=target_task, params=target_params, queue=queue or periodic_task.queue or None
        )
    except ScheduleError as exc:
        errors.update(exc.errors)
    phrase = schedule if schedule is not None else (options.phrase if options else "")
    if schedule is not None or (tz is not None and phrase):
        try:
            parsed = schedule_parse(schedule=phrase, tz=target_tz)
        except ScheduleError as exc:
            errors.update(exc.errors)
    if new_name is not None and new_name.strip() != periodic_task.name:
        try:
            _validate_name(new_name, exclude_pk=periodic_task.pk)
        except ScheduleError as exc:
            errors.update(exc.errors)
    for value, choices, field in (
        (overlap, OverlapPolicy, "overlap"),
        (misfire, MisfirePolicy, "misfire"),
    ):
        if value is not None:
            try:
                _choice(value, choices, field)
            except ScheduleError as exc:
                errors.update(exc.errors)
    if description is not None:
        try:
            _check_description(description)
        except ScheduleError as exc:
            errors.update(exc.errors)
    if errors:
        raise ScheduleError(errors)
    assert checked is not None

    if new_name is not None:
        periodic_task.name = new_name.strip()
    periodic_task.task = checked.task
    periodic_task.kwargs = json.dumps(checked.params)
    periodic_task.queue = checked.queue
    if description is not None:
        periodic_task.description = description
    if enabled is not None:
        periodic_task.enabled = enabled
    if parsed is not None:
        for field, value in _schedule_fields(parsed).items():
            setattr(periodic_task, field, value)
    periodic_task.save()
    if options is None:
        options = ScheduleOptions(
            periodic_task=periodic_task, overlap=load_catalog().get(checked.task).overlap
        )
    if parsed is not None:
        options.phrase = " ".join(phrase.split())
        options.timezone = parsed.timezone
    if overlap is not None:
        options.overlap = overlap
    if misfire is not None:
        options.misfire = misfire
    options.save()
    after = _snapshot(periodic_task, options)
    changes = _diff(before, after)
    if periodic_task.name != name:
        changes["name"] = [name, periodic_task.name]
    if changes:
        _audit(
            periodic_task,
            name=periodic_task.name,
            action=AuditEntry.Action.UPDATED,
            actor=actor,
            source=source,
            changes=changes,
        )
        _event("updated", periodic_task, changes=sorted(changes), source=source)
    return periodic_task


# Columns of django-celery-beat's form that the services above do not model; the admin edits
# them, so its audit entries record them too.
_STOCK_COLUMNS = (
    "args",
    "start_time",
    "expires",
    "expire_seconds",
    "one_off",
    "priority",
    "headers",
    "exchange",
    "routing_key",
)
_SCHEDULE_COLUMNS = ("interval_id", "crontab_id", "solar_id", "clocked_id")


def _stock_columns(periodic_task: PeriodicTask) -> dict[str, Any]:
    values = {column: getattr(periodic_task, column) for column in _STOCK_COLUMNS}
    return {
        column: value.isoformat() if isinstance(value, datetime) else value
        for column, value in values.items()
    }


@transaction.atomic
def schedule_save(
    *,
    periodic_task: PeriodicTask,
    schedule: str | None = None,
    tz: str = "UTC",
    overlap: str | None = None,
    misfire: str | None = None,
    actor: User = None,
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Save a periodic task edited column by column, as django-celery-beat's admin form edits it.

    `periodic_task` carries the edited, unsaved columns (a new row when it is being added).
    With `schedule` (English or cron, read in `tz`) its schedule columns are resolved as
    `schedule_create` resolves them; with None the stock schedule it carries (an interval,
    crontab, solar or clocked row) is kept, and a phrase it no longer runs on is forgotten.
    Validates like `schedule_create`, then records the audit entry and the event.
    """
    adding = periodic_task._state.adding
    stored = (
        None
        if adding
        # of=self: PostgreSQL cannot lock the nullable side of the outer joins.
        else PeriodicTask.objects.select_for_update(of=("self",))
        .select_related("interval", "crontab", "clocked", "solar", "options")
        .get(pk=periodic_task.pk)
    )
    options = None if stored is None else _options_of(stored)
    errors: dict[str, list[str]] = {}
    checked: ValidatedTask | None = None
    parsed: ParsedSchedule | None = None
    try:
        checked = task_validate(
            task=periodic_task.task,
            params=params_from_json(periodic_task.kwargs),
            queue=periodic_task.queue or None,
        )
    except ScheduleError as exc:
        errors.update(exc.errors)
    if schedule is not None:
        try:
            parsed = schedule_parse(schedule=schedule, tz=tz)
        except ScheduleError as exc:
            errors.update(exc.errors)
    else:
        try:
            zone_named(tz)
        except ScheduleParseError as exc:
            errors["timezone"] = [str(exc)]
        chosen = [column for column in _SCHEDULE_COLUMNS if getattr(periodic_task, column)]
        if len(chosen) != 1:
            errors["schedule"] = [
                "write a schedule (English or cron), or choose exactly one interval, crontab, "
                "solar or clocked schedule"
            ]
        elif periodic_task.clocked_id and not periodic_task.one_off:
            errors["one_off"] = ["a clocked schedule runs once: it must be one-off"]
    for check in (
        lambda: _validate_name(periodic_task.name, exclude_pk=None if adding else periodic_task.pk),
        lambda: overlap is None or _choice(overlap, OverlapPolicy, "overlap"),
        lambda: misfire is None or _choice(misfire, MisfirePolicy, "misfire"),
        lambda: _check_description(periodic_task.description),
    ):
        try:
            check()
        except ScheduleError as exc:
            errors.update(exc.errors)
    if errors:
        raise ScheduleError(errors)
    assert checked is not None

    before: dict[str, Any] = {}
    if stored is not None:
        try:
            before = _snapshot(stored, options)
        except json.JSONDecodeError:  # parameters stored by hand as non-JSON: the diff shows them
            before = {"params": stored.kwargs}
    before_columns = {} if stored is None else _stock_columns(stored)
    periodic_task.name = periodic_task.name.strip()
    periodic_task.task = checked.task
    periodic_task.kwargs = json.dumps(checked.params)
    periodic_task.queue = checked.queue
    if parsed is not None:
        for field, value in _schedule_fields(parsed).items():
            setattr(periodic_task, field, value)
    periodic_task.save()

    if options is None:
        options = ScheduleOptions(
            periodic_task=periodic_task, overlap=load_catalog().get(checked.task).overlap
        )
    schedule_moved = stored is None or any(
        getattr(stored, column) != getattr(periodic_task, column) for column in _SCHEDULE_COLUMNS
    )
    if parsed is not None:
        options.phrase = " ".join((schedule or "").split())
        options.timezone = parsed.timezone
    elif schedule_moved or not options.phrase:
        # The row now runs on a stock schedule: the phrase no longer describes it. A crontab
        # row carries its own zone, which is the one beat uses.
        options.phrase = ""
        crontab = periodic_task.crontab
        options.timezone = str(crontab.timezone) if crontab is not None else tz
    if overlap:
        options.overlap = overlap
    if misfire:
        options.misfire = misfire
    options.save()

    after = _snapshot(periodic_task, options)
    after_columns = _stock_columns(periodic_task)
    if stored is None:
        # A new row records its stock columns only where they differ from the defaults.
        before_columns = {
            column: value
            for column, value in after_columns.items()
            if value in (None, False, "", "[]", "{}")
        }
    changes = _diff(before, after) | _diff(before_columns, after_columns)
    if stored is None:
        _audit(
            periodic_task,
            name=periodic_task.name,
            action=AuditEntry.Action.CREATED,
            actor=actor,
            source=source,
            changes=changes,
        )
        _event("created", periodic_task, message=schedule_describe(periodic_task), source=source)
        return periodic_task
    if periodic_task.name != stored.name:
        changes["name"] = [stored.name, periodic_task.name]
    if changes:
        _audit(
            periodic_task,
            name=periodic_task.name,
            action=AuditEntry.Action.UPDATED,
            actor=actor,
            source=source,
            changes=changes,
        )
        _event("updated", periodic_task, changes=sorted(changes), source=source)
    return periodic_task


def _set_enabled(name: str, *, enabled: bool, actor: User, source: str) -> PeriodicTask:
    periodic_task = schedule_get(name)
    if periodic_task.enabled == enabled:
        return periodic_task
    periodic_task.enabled = enabled
    periodic_task.save()  # save(): beat's change counter moves with it
    action = AuditEntry.Action.ENABLED if enabled else AuditEntry.Action.DISABLED
    _audit(
        periodic_task,
        name=name,
        action=action,
        actor=actor,
        source=source,
        changes={"enabled": [not enabled, enabled]},
    )
    _event(str(action), periodic_task, source=source)
    return periodic_task


@transaction.atomic
def schedule_enable(*, name: str, actor: User = None, source: str = Source.SYSTEM) -> PeriodicTask:
    return _set_enabled(name, enabled=True, actor=actor, source=source)


@transaction.atomic
def schedule_disable(*, name: str, actor: User = None, source: str = Source.SYSTEM) -> PeriodicTask:
    return _set_enabled(name, enabled=False, actor=actor, source=source)


@transaction.atomic
def schedule_set_enabled_bulk(
    *, names: list[str], enabled: bool, actor: User = None, source: str = Source.SYSTEM
) -> int:
    """Enable or disable many periodic tasks in one update; returns how many changed."""
    rows = list(PeriodicTask.objects.filter(name__in=names).exclude(enabled=enabled))
    if not rows:
        return 0
    update: dict[str, Any] = {"enabled": enabled}
    if not enabled:
        update["last_run_at"] = None  # as PeriodicTask.save() does for a disabled task
    PeriodicTask.objects.filter(pk__in=[row.pk for row in rows]).update(**update)
    # A queryset update bypasses save(): tell beat itself.
    PeriodicTasks.update_changed()
    action = AuditEntry.Action.ENABLED if enabled else AuditEntry.Action.DISABLED
    for row in rows:
        _audit(
            row,
            name=row.name,
            action=action,
            actor=actor,
            source=source,
            changes={"enabled": [not enabled, enabled]},
        )
        _event(str(action), row, source=source)
    return len(rows)


@transaction.atomic
def schedule_delete(*, name: str, actor: User = None, source: str = Source.SYSTEM) -> None:
    periodic_task = schedule_get(name)
    before = _snapshot(periodic_task, _options_of(periodic_task))
    _event("deleted", periodic_task, source=source)
    periodic_task.delete()
    _audit(
        None,
        name=name,
        action=AuditEntry.Action.DELETED,
        actor=actor,
        source=source,
        changes={key: [value, None] for key, value in before.items()},
    )


def task_enqueue(
    *,
    task: str,
    params: Any = None,
    queue: str | None = None,
    periodic_task_name: str | None = None,
    countdown: float | None = None,
) -> str:
    """Queue catalog task `task` after the current transaction commits; returns its task id."""
    from config.celery import app

    checked = task_validate(task=task, params=params, queue=queue)
    task_id = str(uuid.uuid4())
    headers = {"periodic_task_name": periodic_task_name} if periodic_task_name else None

    def send() -> None:
        if not settings.CELERY_ENABLED:
            # No broker in this deployment: the caller runs the task itself (MIRT's dispatcher).
            app.tasks[checked.task].apply(kwargs=checked.params, task_id=task_id, headers=headers)
            return
        try:
            app.send_task(
                checked.task,
                kwargs=checked.params,
                queue=checked.queue,
                task_id=task_id,
                headers=headers,
                kwargsrepr=json.dumps(checked.params),
                countdown=countdown,
            )
        except Exception as exc:
            # The transaction that asked for this run has committed (its audit entry too): the
            # event log must say the run never left, and the caller gets the error.
            event_record(
                type="task.failed",
                task_id=task_id,
                task_name=checked.task,
                periodic_task_name=periodic_task_name or "",
                state="FAILURE",
                message=f"could not be queued: {type(exc).__name__}: {exc}",
            )
            raise

    transaction.on_commit(send)
    return task_id


@transaction.atomic
def schedule_run_now(*, name: str, actor: User = None, source: str = Source.SYSTEM) -> str:
    """Queue one run of periodic task `name` now, outside its schedule; returns the task id."""
    periodic_task = schedule_get(name)
    try:
        params = json.loads(periodic_task.kwargs or "{}")
    except json.JSONDecodeError as exc:
        raise ScheduleError.on("params", f"stored parameters are not JSON: {exc.msg}") from exc
    task_id = task_enqueue(
        task=periodic_task.task,
        params=params,
        queue=periodic_task.queue or None,
        periodic_task_name=periodic_task.name,
    )
    _audit(
        periodic_task,
        name=name,
        action=AuditEntry.Action.RUN_NOW,
        actor=actor,
        source=source,
        changes={"task_id": [None, task_id]},
    )
    _event("run_now", periodic_task, task_id=task_id, source=source)
    return task_id


def stored_kwargs(result: TaskResult) -> dict[str, Any]:
    """The keyword arguments a stored result ran with.

    The results backend stores the message's `kwargsrepr`: JSON for tasks we queue (we pass it),
    a Python literal for tasks queued by others (beat); Celery cuts it at 1024 characters.
    """
    raw = result.task_kwargs or ""
    try:
        text = json.loads(raw) if raw else "{}"
    except json.JSONDecodeError:
        text = raw
    if not isinstance(text, str):
        text = json.dumps(text)
    for read in (json.loads, ast.literal_eval):
        try:
            value = read(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            continue
        if isinstance(value, dict):
            return value
    raise ScheduleError.on(
        "params", f"the stored arguments of task {result.task_id} cannot be read back: {raw[:80]}"
    )


def task_result_retry(*, result: TaskResult) -> str:
    """Queue the task of a stored result again with the same arguments (catalog tasks only)."""
    return task_enqueue(
        task=result.task_name or "",
        params=stored_kwargs(result),
        periodic_task_name=result.periodic_task_name,  # type: ignore[attr-defined]
    )


def history_clear(*, older_than_days: int | None = None, batch_size: int = 1000) -> int:
    """Delete stored results and events (all, or older than N days) in batches; how many."""
    cutoff = None
    if older_than_days is not None:
        if older_than_days < 0:
            raise ScheduleError.on("older_than", "must be 0 or more days")
        cutoff = timezone.now() - timedelta(days=older_than_days)
    if batch_size < 1:
        raise ScheduleError.on("batch_size", "must be 1 or more")
    deleted = 0
    for model, field in ((TaskResult, "date_done"), (TaskEvent, "created_at")):
        # No ORDER BY: any old rows will do, and sorting each batch would cost a sort per batch.
        queryset = model.objects.order_by()
        if cutoff is not None:
            queryset = queryset.filter(**{f"{field}__lt": cutoff})
        while True:
            # Short batches: each is its own transaction, so no lock is held for long.
            pks = list(queryset.values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            deleted += model.objects.filter(pk__in=pks).delete()[0]
    return deleted


# --- Users ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedSuperuser:
    username: str
    password: str
    generated: bool


@transaction.atomic
def superuser_ensure(
    *, username: str = "admin", password: str | None = None
) -> CreatedSuperuser | None:
    """Create a superuser when none exists yet; None when one already does.

    Without `password` a random one is generated: it is returned once and stored only hashed.
    """
    user_model = get_user_model()
    if user_model._default_manager.filter(is_superuser=True).exists():
        return None
    generated = not password
    secret = password or secrets.token_urlsafe(12)
    user_model._default_manager.create_superuser(username=username, email="", password=secret)
    return CreatedSuperuser(username=username, password=secret, generated=generated)
