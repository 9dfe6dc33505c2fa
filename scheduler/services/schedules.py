"""Writes of schedules (periodic tasks with their options): create, update, save from the
admin, enable/disable (one or many), delete, run now. Each validates the catalog name, the
parameters and the schedule, saves atomically, records an audit entry and an event, notifies
beat, and raises `ScheduleError` (naming the field) without saving anything when the input is
wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from scheduler.beat.changes import notify_beat
from scheduler.catalog import (
    CATALOG_EXISTING_DOCS,
    load_catalog,
    outside_catalog_message,
)
from scheduler.models import AuditEntry, ScheduleOptions, Source
from scheduler.schedules.parsing import (
    ParsedSchedule,
    ScheduleParseError,
    parse_schedule,
    zone_named,
)
from scheduler.schedules.policies import OverlapPolicy
from scheduler.schedules.rows import options_of, schedule_describe
from scheduler.services.audit import (
    audit_write,
    change_record,
    change_record_update,
    changes_between,
    schedule_event,
    schedule_snapshot,
)
from scheduler.services.errors import ScheduleError, ScheduleNotFound, User
from scheduler.services.owners import headers_with_owner, owner_link, owner_of_params
from scheduler.services.runs import ValidatedTask, params_from_json, task_enqueue, task_validate
from scheduler.services.schedule_policies import PolicyChanges, policies_check, policies_given

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Row = TypeVar("_Row", IntervalSchedule, CrontabSchedule, ClockedSchedule)

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
# A keyword argument not given (None may be a value: no limit).
_UNSET: Any = object()


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


# --- Schedule rows -------------------------------------------------------------------------------


def _schedule_fields(
    parsed: ParsedSchedule, *, row: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """django-celery-beat schedule columns for `parsed`, reusing existing schedule rows (`row`:
    how a row is found or made; `schedule_fields_unsaved` builds them without storing)."""
    row = row or _schedule_row
    fields: dict[str, Any] = {
        "interval": None,
        "crontab": None,
        "clocked": None,
        "solar": None,
        "one_off": False,
    }
    if parsed.interval is not None:
        fields["interval"] = row(
            IntervalSchedule, every=parsed.interval.every, period=parsed.interval.period
        )
    elif parsed.crontab is not None:
        spec = parsed.crontab
        fields["crontab"] = row(
            CrontabSchedule,
            minute=spec.minute,
            hour=spec.hour,
            day_of_week=spec.day_of_week,
            day_of_month=spec.day_of_month,
            month_of_year=spec.month_of_year,
            timezone=parsed.timezone,
        )
    else:
        assert parsed.clocked is not None
        fields["clocked"] = row(ClockedSchedule, clocked_time=parsed.clocked)
        fields["one_off"] = True
    return fields


def _schedule_row(model: type[_Row], **lookup: Any) -> _Row:
    # No unique constraint on schedule rows (the stock admins can add duplicates), so
    # get_or_create could raise MultipleObjectsReturned: take the oldest match.
    rows = model._default_manager.filter(**lookup).order_by("pk")
    return rows.first() or model._default_manager.create(**lookup)


def schedule_fields_unsaved(parsed: ParsedSchedule) -> dict[str, Any]:
    """The schedule columns saving `parsed` gives a periodic task, with rows built but not
    stored: a preview must not write schedule rows."""
    return _schedule_fields(parsed, row=_unsaved_row)


def _unsaved_row(model: type[_Row], **columns: Any) -> _Row:
    return model(**columns)


def schedule_require_catalog(periodic_task: PeriodicTask, action: str) -> None:
    """The one rule for rows outside the catalog (scheduler/catalog/): viewed, disabled and
    deleted, never enabled, run or edited. A ScheduleError on `task` saying so."""
    if periodic_task.task not in load_catalog():
        raise ScheduleError.on(
            "task", outside_catalog_message(periodic_task.task, periodic_task.name, action)
        )


def schedule_get(name: str) -> PeriodicTask:
    try:
        return PeriodicTask.objects.select_related(
            "interval", "crontab", "clocked", "solar", "options"
        ).get(name=name)
    except PeriodicTask.DoesNotExist:
        raise ScheduleNotFound(name) from None


# --- Services ------------------------------------------------------------------------------------


def _check_description(description: str) -> None:
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ScheduleError.on("description", f"is longer than {DESCRIPTION_MAX_LENGTH} characters")


class _FieldErrors:
    """Every field's errors at once, so a form can show them all; raised together."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def check(
        self, validate: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T | None:
        """What `validate` returns; None when it raised ScheduleError, whose errors are kept."""
        try:
            return validate(*args, **kwargs)
        except ScheduleError as exc:
            self.errors.update(exc.errors)
            return None

    def add(self, field: str, message: str) -> None:
        self.errors[field] = [message]

    def raise_any(self) -> None:
        if self.errors:
            raise ScheduleError(self.errors)


def _check_options(
    errors: _FieldErrors,
    *,
    policies: dict[str, Any],
    description: str | None,
    tz: str | None,
    stored: PeriodicTask | None,
) -> PolicyChanges | None:
    """The policies given (scheduler/services/schedule_policies.py; a field left out stays as
    it is) checked against the row as stored, and the description (None: left as it is)."""
    checked = errors.check(
        policies_check,
        policies,
        tz=tz,
        start_time=stored.start_time if stored is not None else None,
        end_time=stored.expires if stored is not None else None,
    )
    if description is not None:
        errors.check(_check_description, description)
    return checked


def _row_save(
    periodic_task: PeriodicTask,
    *,
    checked: ValidatedTask,
    parsed: ParsedSchedule | None,
    policies: PolicyChanges | None = None,
) -> None:
    """Save the validated task, parameters and queue, the schedule columns of `parsed`, and
    the start and end times of `policies`; a task whose parameters name a domain object (an
    agent) belongs to it (services/owners.py)."""
    periodic_task.task = checked.task
    periodic_task.kwargs = json.dumps(checked.params)
    periodic_task.queue = checked.queue
    owner = owner_of_params(checked.params)
    if owner is not None:
        # In the headers beat publishes with: the runs' events reach the object's group.
        periodic_task.headers = headers_with_owner(periodic_task.headers, owner)
    for column, value in (policies.task if policies is not None else {}).items():
        setattr(periodic_task, column, value)
    if parsed is not None:
        for field, value in _schedule_fields(parsed).items():
            setattr(periodic_task, field, value)
    try:
        # A savepoint: a concurrent create of the same name fails here, not in the commit.
        with transaction.atomic():
            periodic_task.save()
    except (IntegrityError, DjangoValidationError) as exc:
        if (
            PeriodicTask.objects.filter(name=periodic_task.name)
            .exclude(pk=periodic_task.pk)
            .exists()
        ):
            raise ScheduleError.on(
                "name", f"a periodic task named {periodic_task.name!r} already exists"
            ) from exc
        raise
    if owner is not None:
        owner_link(periodic_task, owner)


def _default_options(periodic_task: PeriodicTask) -> ScheduleOptions:
    # "default", not the task's policy of today: resolved when a run starts
    # (scheduler/worker/task_base.py).
    return ScheduleOptions(periodic_task=periodic_task, overlap=OverlapPolicy.DEFAULT)


def _options_save(
    options: ScheduleOptions,
    *,
    parsed: ParsedSchedule | None,
    phrase: str,
    policies: PolicyChanges | None,
) -> ScheduleOptions:
    """Save the phrase `parsed` was read from and the policies checked (those not given are
    left as they are)."""
    if parsed is not None:
        options.phrase = " ".join(phrase.split())
        options.timezone = parsed.timezone
    for column, value in (policies.options if policies is not None else {}).items():
        setattr(options, column, value)
    options.save()
    return options


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
    misfire: str | None = None,
    catchup: str | None = None,
    catchup_window: Any = None,
    jitter: Any = None,
    start_time: Any = None,
    end_time: Any = None,
    max_runs: Any = None,
    pause_after_failures: Any = None,
    enabled: bool = True,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Create a periodic task running catalog task `task` on `schedule` (English or cron).

    The policies (scheduler/services/schedule_policies.py): `misfire` ('skip', 'run_once') is
    the preset of a catch-up and its window; `catchup_window`, `max_runs` and
    `pause_after_failures` None: no limit; `end_time` is the PeriodicTask's `expires`.
    """
    policies = policies_given(
        {
            "overlap": overlap,
            "misfire": misfire,
            "catchup": catchup,
            "catchup_window": catchup_window,
            "jitter": jitter,
            "start_time": start_time,
            "end_time": end_time,
            "max_runs": max_runs,
            "pause_after_failures": pause_after_failures,
        },
        unset=_UNSET,
    )
    errors = _FieldErrors()
    errors.check(_validate_name, name)
    checked = errors.check(task_validate, task=task, params=params, queue=queue)
    parsed = errors.check(schedule_parse, schedule=schedule, tz=tz)
    changes = _check_options(errors, policies=policies, description=description, tz=tz, stored=None)
    errors.raise_any()
    assert checked is not None
    assert parsed is not None

    periodic_task = PeriodicTask(name=name.strip(), description=description, enabled=enabled)
    _row_save(periodic_task, checked=checked, parsed=parsed, policies=changes)
    options = _options_save(
        _default_options(periodic_task), parsed=parsed, phrase=schedule, policies=changes
    )
    change_record(
        periodic_task,
        AuditEntry.Action.CREATED,
        changes_between({}, schedule_snapshot(periodic_task, options)),
        actor=actor,
        actor_name=actor_name,
        source=source,
        message=parsed.description,
    )
    return periodic_task


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
    catchup: str | None = None,
    catchup_window: Any = _UNSET,
    jitter: Any = None,
    start_time: Any = _UNSET,
    end_time: Any = _UNSET,
    max_runs: Any = _UNSET,
    pause_after_failures: Any = _UNSET,
    enabled: bool | None = None,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Change the given fields of periodic task `name`; the others stay as they are (None
    leaves overlap, misfire, catchup and jitter; it clears catchup_window, start_time,
    end_time, max_runs and pause_after_failures). Setting max_runs sets the runs left to it."""
    periodic_task = schedule_get(name)
    periodic_task = PeriodicTask.objects.select_for_update().get(pk=periodic_task.pk)
    options = options_of(periodic_task)
    before = schedule_snapshot(periodic_task, options)
    phrase = schedule if schedule is not None else (options.phrase if options else "")
    policies = policies_given(
        {
            "overlap": overlap,
            "misfire": misfire,
            "catchup": catchup,
            "catchup_window": catchup_window,
            "jitter": jitter,
            "start_time": start_time,
            "end_time": end_time,
            "max_runs": max_runs,
            "pause_after_failures": pause_after_failures,
        },
        unset=_UNSET,
    )
    checked, parsed, changes = _update_validate(
        periodic_task,
        options,
        new_name=new_name,
        task=task,
        schedule=schedule,
        phrase=phrase,
        params=before["params"] if params is _UNSET else params,
        tz=tz,
        queue=queue,
        description=description,
        policies=policies,
    )

    if new_name is not None:
        periodic_task.name = new_name.strip()
    if description is not None:
        periodic_task.description = description
    if enabled is not None:
        periodic_task.enabled = enabled
    _row_save(periodic_task, checked=checked, parsed=parsed, policies=changes)
    options = _options_save(
        options if options is not None else _default_options(periodic_task),
        parsed=parsed,
        phrase=phrase,
        policies=changes,
    )
    _pause_end_if_enabled(periodic_task, options)
    change_record_update(
        periodic_task,
        changes_between(before, schedule_snapshot(periodic_task, options)),
        old_name=name,
        actor=actor,
        actor_name=actor_name,
        source=source,
    )
    return periodic_task


def _update_validate(
    periodic_task: PeriodicTask,
    options: ScheduleOptions | None,
    *,
    new_name: str | None,
    task: str | None,
    schedule: str | None,
    phrase: str,
    params: Any,
    tz: str | None,
    queue: str | None,
    description: str | None,
    policies: dict[str, Any],
) -> tuple[ValidatedTask, ParsedSchedule | None, PolicyChanges | None]:
    """`schedule_update`'s checks of the fields given, against the row as it is (`params` is
    the row's when none are given): the task, the schedule and the policies to save, or
    ScheduleError."""
    errors = _FieldErrors()
    checked = errors.check(
        task_validate,
        task=task or periodic_task.task,
        params=params,
        queue=queue or periodic_task.queue or None,
        stored_in=periodic_task.name if task in (None, periodic_task.task) else None,
    )
    parsed: ParsedSchedule | None = None
    target_tz = tz or (options.timezone if options else "UTC")
    # A new zone alone reads the stored phrase again in it.
    if schedule is not None or (tz is not None and phrase):
        parsed = errors.check(schedule_parse, schedule=phrase, tz=target_tz)
    if new_name is not None and new_name.strip() != periodic_task.name:
        errors.check(_validate_name, new_name, exclude_pk=periodic_task.pk)
    changes = _check_options(
        errors, policies=policies, description=description, tz=target_tz, stored=periodic_task
    )
    errors.raise_any()
    assert checked is not None
    return checked, parsed, changes


# Columns of django-celery-beat's form that the services above do not model; the admin edits
# them, so its audit entries record them too.
_STOCK_COLUMNS = (
    "args",
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
    catchup: str | None = None,
    catchup_window: Any = _UNSET,
    jitter: Any = None,
    max_runs: Any = _UNSET,
    pause_after_failures: Any = _UNSET,
    actor: User = None,
    source: str = Source.SYSTEM,
) -> PeriodicTask:
    """Save a periodic task edited column by column, as django-celery-beat's admin form edits it.

    `periodic_task` carries the edited, unsaved columns (a new row when it is being added).
    With `schedule` (English or cron, read in `tz`) its schedule columns are resolved as
    `schedule_create` resolves them; with None the stock schedule it carries (an interval,
    crontab, solar or clocked row) is kept, and a phrase it no longer runs on is forgotten.
    Its start_time and expires (the end time) are checked as `schedule_update` checks them when
    they changed; the policies are as `schedule_update` takes them (a form passes those it
    changed). Validates like `schedule_create`, then records the audit entry and the event.
    """
    stored = _stored_locked(periodic_task)
    options = None if stored is None else options_of(stored)
    policies = policies_given(
        {
            "overlap": overlap,
            "misfire": misfire,
            "catchup": catchup,
            "catchup_window": catchup_window,
            "jitter": jitter,
            "max_runs": max_runs,
            "pause_after_failures": pause_after_failures,
        },
        unset=_UNSET,
    )
    for name, column in (("start_time", "start_time"), ("end_time", "expires")):
        if stored is None or getattr(stored, column) != getattr(periodic_task, column):
            policies[name] = getattr(periodic_task, column)
    checked, parsed, changes = _save_validate(
        periodic_task, stored=stored, schedule=schedule, tz=tz, policies=policies
    )
    if (
        changes is not None
        and options is not None
        and (changes.options.get("max_runs", _UNSET) == options.max_runs)
    ):
        # A form posts every field: the same limit again does not count the runs again.
        del changes.options["max_runs"], changes.options["remaining_runs"]

    before = {} if stored is None else schedule_snapshot(stored, options)
    before_columns = {} if stored is None else _stock_columns(stored)
    periodic_task.name = periodic_task.name.strip()
    _row_save(periodic_task, checked=checked, parsed=parsed, policies=changes)
    options = _save_options(
        periodic_task,
        options,
        stored=stored,
        parsed=parsed,
        schedule=schedule,
        tz=tz,
        policies=changes,
    )
    _pause_end_if_enabled(periodic_task, options)
    _save_record(
        periodic_task,
        options,
        stored=stored,
        before=before,
        before_columns=before_columns,
        actor=actor,
        source=source,
    )
    return periodic_task


def _stored_locked(periodic_task: PeriodicTask) -> PeriodicTask | None:
    """The row `periodic_task` edits as it is stored, locked; None when it is being added."""
    if periodic_task._state.adding:
        return None
    # of=self: PostgreSQL cannot lock the nullable side of the outer joins.
    return (
        PeriodicTask.objects.select_for_update(of=("self",))
        .select_related("interval", "crontab", "clocked", "solar", "options")
        .get(pk=periodic_task.pk)
    )


def _save_validate(
    periodic_task: PeriodicTask,
    *,
    stored: PeriodicTask | None,
    schedule: str | None,
    tz: str,
    policies: dict[str, Any],
) -> tuple[ValidatedTask, ParsedSchedule | None, PolicyChanges | None]:
    """`schedule_save`'s checks of the edited columns: the task, the schedule read from
    `schedule` (None: the row keeps a stock schedule) and the policies, or ScheduleError."""
    errors = _FieldErrors()
    checked = errors.check(
        lambda: task_validate(
            task=periodic_task.task,
            params=params_from_json(periodic_task.kwargs),
            queue=periodic_task.queue or None,
            stored_in=stored.name
            if stored is not None and stored.task == periodic_task.task
            else None,
        )
    )
    parsed: ParsedSchedule | None = None
    if schedule is not None:
        parsed = errors.check(schedule_parse, schedule=schedule, tz=tz)
    else:
        _check_stock_schedule(errors, periodic_task, tz=tz)
    errors.check(
        _validate_name, periodic_task.name, exclude_pk=None if stored is None else periodic_task.pk
    )
    changes = _check_options(
        errors, policies=policies, description=periodic_task.description, tz=tz, stored=stored
    )
    errors.raise_any()
    assert checked is not None
    return checked, parsed, changes


def _check_stock_schedule(errors: _FieldErrors, periodic_task: PeriodicTask, *, tz: str) -> None:
    """The zone, and exactly one stock schedule row (a clocked one only for a one-off task)."""
    try:
        zone_named(tz)
    except ScheduleParseError as exc:
        errors.add("timezone", str(exc))
    chosen = [column for column in _SCHEDULE_COLUMNS if getattr(periodic_task, column)]
    if len(chosen) != 1:
        errors.add(
            "schedule",
            "write a schedule (English or cron), or choose exactly one interval, crontab, "
            "solar or clocked schedule",
        )
    elif periodic_task.clocked_id and not periodic_task.one_off:
        errors.add("one_off", "a clocked schedule runs once: it must be one-off")


def _save_options(
    periodic_task: PeriodicTask,
    options: ScheduleOptions | None,
    *,
    stored: PeriodicTask | None,
    parsed: ParsedSchedule | None,
    schedule: str | None,
    tz: str,
    policies: PolicyChanges | None,
) -> ScheduleOptions:
    """Save the options of the row `schedule_save` just saved: the phrase and its zone, or none
    when the row runs on a stock schedule, and the policies given."""
    if options is None:
        options = _default_options(periodic_task)
    schedule_moved = stored is None or any(
        getattr(stored, column) != getattr(periodic_task, column) for column in _SCHEDULE_COLUMNS
    )
    if parsed is None and (schedule_moved or not options.phrase):
        # The row now runs on a stock schedule: the phrase no longer describes it. A crontab
        # row carries its own zone, which is the one beat uses.
        options.phrase = ""
        crontab = periodic_task.crontab
        options.timezone = str(crontab.timezone) if crontab is not None else tz
    _options_save(options, parsed=parsed, phrase=schedule or "", policies=policies)
    return options


def _save_record(
    periodic_task: PeriodicTask,
    options: ScheduleOptions,
    *,
    stored: PeriodicTask | None,
    before: dict[str, Any],
    before_columns: dict[str, Any],
    actor: User,
    source: str,
) -> None:
    """The audit entry (and event) of `schedule_save`: what changed, the stock columns too."""
    after = schedule_snapshot(periodic_task, options)
    after_columns = _stock_columns(periodic_task)
    if stored is None:
        # A new row records its stock columns only where they differ from the defaults.
        before_columns = {
            column: value
            for column, value in after_columns.items()
            if value in (None, False, "", "[]", "{}")
        }
    changes = changes_between(before, after) | changes_between(before_columns, after_columns)
    if stored is None:
        change_record(
            periodic_task,
            AuditEntry.Action.CREATED,
            changes,
            actor=actor,
            source=source,
            message=schedule_describe(periodic_task),
        )
    else:
        change_record_update(
            periodic_task, changes, old_name=stored.name, actor=actor, source=source
        )


# --- Enable and disable (a pause with a note and an end: services/pauses.py) ---------------------

# What an enable or a disable leaves of a pause: nothing. A plain disable ends a pause too, so
# that its "until" never enables a schedule somebody switched off since.
PAUSE_CLEARED: dict[str, Any] = {
    "paused_at": None,
    "paused_by": None,
    "paused_by_name": "",
    "pause_note": "",
    "paused_until": None,
    "failure_streak": 0,
}


def pause_clear(pks: list[int], *, streak: bool = True) -> None:
    """Forget the pauses (and with `streak` the failure streaks) of these periodic tasks: one
    UPDATE that matches no row when there is nothing to forget."""
    has = Q(paused_at__isnull=False) | Q(paused_until__isnull=False)
    cleared = dict(PAUSE_CLEARED)
    if streak:
        has |= Q(failure_streak__gt=0)
    else:
        cleared.pop("failure_streak")
    ScheduleOptions.objects.filter(periodic_task_id__in=pks).filter(has).update(**cleared)


def _pause_end_if_enabled(periodic_task: PeriodicTask, options: ScheduleOptions) -> None:
    """An edit that enabled a paused row (the admin's checkbox, the API's "enabled") ends its
    pause: after the options are saved, which write back the pause they were read with."""
    if periodic_task.enabled and (options.paused_at or options.paused_until):
        for field, value in PAUSE_CLEARED.items():
            if field != "failure_streak":
                setattr(options, field, value)
        pause_clear([periodic_task.pk], streak=False)


def _set_enabled(
    name: str, *, enabled: bool, actor: User, source: str, actor_name: str = ""
) -> PeriodicTask:
    # Locked as the edits lock it: save() writes every column, so an unlocked read could
    # write back the columns of an edit that committed in between.
    periodic_task = PeriodicTask.objects.select_for_update().get(pk=schedule_get(name).pk)
    if periodic_task.enabled == enabled:
        return periodic_task
    if enabled:
        schedule_require_catalog(periodic_task, "enabled")
    periodic_task.enabled = enabled
    periodic_task.save()  # save(): beat's change counter moves with it
    pause_clear([periodic_task.pk])
    action = AuditEntry.Action.ENABLED if enabled else AuditEntry.Action.DISABLED
    change_record(
        periodic_task,
        action,
        {"enabled": [not enabled, enabled]},
        actor=actor,
        actor_name=actor_name,
        source=source,
    )
    return periodic_task


@transaction.atomic
def schedule_enable(
    *, name: str, actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> PeriodicTask:
    return _set_enabled(name, enabled=True, actor=actor, actor_name=actor_name, source=source)


@transaction.atomic
def schedule_disable(
    *, name: str, actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> PeriodicTask:
    return _set_enabled(name, enabled=False, actor=actor, actor_name=actor_name, source=source)


@transaction.atomic
def schedule_set_enabled_bulk(
    *,
    names: list[str],
    enabled: bool,
    actor: User = None,
    actor_name: str = "",
    source: str = Source.SYSTEM,
) -> int:
    """Enable or disable many periodic tasks in one update; returns how many changed."""
    rows = list(PeriodicTask.objects.filter(name__in=names).exclude(enabled=enabled))
    if not rows:
        return 0
    if enabled:
        catalog = load_catalog()
        outside = sorted((row.name, row.task) for row in rows if row.task not in catalog)
        if outside:
            listed = ", ".join(repr(name) for name, _ in outside)
            tasks = ", ".join(sorted({repr(task) for _, task in outside}))
            raise ScheduleError.on(
                "task",
                f"{listed} run {tasks}, outside the catalog: such schedules can be disabled or "
                "deleted, not enabled; nothing was enabled. To keep them, bring the tasks into "
                f"the catalog with catalog_existing(...) ({CATALOG_EXISTING_DOCS}).",
            )
    pks = [row.pk for row in rows]
    update: dict[str, Any] = {"enabled": enabled}
    if not enabled:
        update["last_run_at"] = None  # as PeriodicTask.save() does for a disabled task
    PeriodicTask.objects.filter(pk__in=pks).update(**update)
    pause_clear(pks)
    # A queryset update bypasses save() and its signals: tell beat which rows changed (and
    # move django-celery-beat's marker, for any other scheduler reading these tables).
    PeriodicTasks.update_changed()
    notify_beat(tasks=pks)
    action = AuditEntry.Action.ENABLED if enabled else AuditEntry.Action.DISABLED
    for row in rows:
        change_record(
            row,
            action,
            {"enabled": [not enabled, enabled]},
            actor=actor,
            actor_name=actor_name,
            source=source,
        )
    return len(rows)


@transaction.atomic
def schedule_delete(
    *, name: str, actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> None:
    periodic_task = schedule_get(name)
    before = schedule_snapshot(periodic_task, options_of(periodic_task))
    schedule_event("deleted", periodic_task, source=source)
    periodic_task.delete()
    audit_write(
        None,
        name=name,
        action=AuditEntry.Action.DELETED,
        actor=actor,
        actor_name=actor_name,
        source=source,
        changes={key: [value, None] for key, value in before.items()},
    )


@transaction.atomic
def schedules_delete(
    *, names: list[str], actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> list[str]:
    """Delete the periodic tasks named, all or none (ScheduleNotFound when one is gone); the
    names deleted."""
    for name in names:
        schedule_delete(name=name, actor=actor, actor_name=actor_name, source=source)
    return list(names)


@transaction.atomic
def schedule_run_now(
    *, name: str, actor: User = None, actor_name: str = "", source: str = Source.SYSTEM
) -> str:
    """Queue one run of periodic task `name` now, outside its schedule; returns the task id."""
    periodic_task = schedule_get(name)
    schedule_require_catalog(periodic_task, "run")
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
    change_record(
        periodic_task,
        AuditEntry.Action.RUN_NOW,
        {"task_id": [None, task_id]},
        actor=actor,
        actor_name=actor_name,
        source=source,
        task_id=task_id,
    )
    return task_id
