"""Schedules declared in code: what each app needs to run by itself, kept in version control.

An app lists its schedules in `<app>/upkeep.py`:

    SCHEDULES = [
        DeclaredSchedule(
            name="tournaments: check transitions",
            task="tournaments.check_transitions",
            schedule="every minute",
            description="Start tournaments whose start came; end those whose end came.",
            # The policies take the services' names and values, e.g.
            # catchup="none", catchup_window="1h", jitter=30, max_runs=10,
            # start_time="2026-05-01T09:00", end_time=..., pause_after_failures=3;
            # misfire="skip" / "run_once" still works, as the preset of a catch-up.
        ),
    ]

Celery's own way of declaring them, `CELERY_BEAT_SCHEDULE` in the settings
(`app.conf.beat_schedule`), is read too: each entry becomes a declaration named by its key.
`manage.py scheduler sync` (scheduler/services/declared.py) makes the periodic tasks match, and
shows where staff changed one since (drift). Reading declarations touches no database.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from celery import current_app
from celery import schedules as celery_schedules
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist

from scheduler.core.durations import duration_seconds
from scheduler.schedules.parsing import ScheduleParseError, zone_named
from scheduler.schedules.policies import CATCHUP_PRESETS, CatchUp
from scheduler.schedules.rows import options_of, stock_schedule

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

# The fields a declaration sets and sync compares with the periodic task, in display order.
DECLARED_FIELDS = (
    "task",
    "schedule",
    "timezone",
    "params",
    "queue",
    "description",
    "overlap",
    "catchup",
    "catchup_window",
    "jitter",
    "start_time",
    "end_time",
    "max_runs",
    "pause_after_failures",
    "enabled",
)
# What a periodic task made before a field was declared holds in it (the last sync of such a
# declaration did not record the field).
DECLARED_DEFAULTS: dict[str, Any] = {
    "catchup": CatchUp.LATEST.value,
    "catchup_window": None,
    "jitter": 0,
    "start_time": None,
    "end_time": None,
    "max_runs": None,
    "pause_after_failures": None,
}
BEAT_SCHEDULE_ORIGIN = "settings.CELERY_BEAT_SCHEDULE"


class DeclarationError(ValueError):
    """A declaration that cannot be read: names it, where it is, and the field that is wrong."""

    def __init__(self, name: str, origin: str, field: str, message: str) -> None:
        self.name, self.origin, self.field = name, origin, field
        super().__init__(f"{origin}: {name!r}: {field}: {message}")


@dataclass(frozen=True)
class DeclaredSchedule:
    """One periodic task as code declares it (the arguments of `schedule_create`)."""

    name: str
    task: str
    schedule: str
    timezone: str = "UTC"
    params: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    description: str = ""
    overlap: str = "default"
    # None: as `misfire` says, else 'latest'. misfire ('skip', 'run_once'): the catch-up
    # presets of earlier versions (scheduler/schedules/policies.py, CATCHUP_PRESETS).
    catchup: str | None = None
    catchup_window: int | str | None = None  # seconds or a duration ('1h'); None: no limit
    misfire: str | None = None
    jitter: int | str = 0
    start_time: datetime | str | None = None  # without an offset: in `timezone`
    end_time: datetime | str | None = None
    max_runs: int | None = None
    pause_after_failures: int | None = None
    enabled: bool = True
    # Where it is declared ("tournaments/upkeep.py"): shown wherever the schedule is.
    origin: str = ""

    def fields(self) -> dict[str, Any]:
        """The declared value of each of DECLARED_FIELDS, as JSON, written as the row holds it
        (times in UTC, durations in seconds, the misfire preset as its catch-up) so that the
        two compare; a value that cannot be read is kept as it is (the services refuse it)."""
        values = {name: getattr(self, name) for name in DECLARED_FIELDS}
        values["params"] = dict(self.params)
        preset = CATCHUP_PRESETS.get(self.misfire or "")
        if self.catchup is None:
            values["catchup"] = preset[0] if preset is not None else CatchUp.LATEST.value
        if self.catchup_window is None and preset is not None:
            values["catchup_window"] = preset[1]
        values["catchup_window"] = _seconds_of(values["catchup_window"])
        values["jitter"] = _seconds_of(self.jitter)
        values["start_time"] = _moment_of(self.start_time, self.timezone)
        values["end_time"] = _moment_of(self.end_time, self.timezone)
        return values


_DIGITS = re.compile(r"\d+")


def _seconds_of(value: Any) -> Any:
    """'1h' as 3600; anything else as it is."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value.strip()):
        try:
            return duration_seconds(value)
        except ValueError:
            return value
    if isinstance(value, str):
        return int(value)
    return value


def _moment_of(value: Any, tz: str) -> Any:
    """A time as the row's ISO 8601 in UTC (one without an offset read in `tz`); anything that
    is not a time as it is."""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if not isinstance(moment, date):
        return value
    try:
        zone = zone_named(tz)
    except ScheduleParseError:
        return value
    if not isinstance(moment, datetime):  # a day: from its midnight
        moment = datetime.combine(moment, time(), tzinfo=zone)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:
        return value


def _origin_of(module: Any) -> str:
    path = Path(getattr(module, "__file__", "") or "")
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return module.__name__


def app_declarations(*, only: str | None = None) -> list[DeclaredSchedule]:
    """Every installed app's `upkeep.SCHEDULES`, in INSTALLED_APPS order (`only`: one app's)."""
    found: list[DeclaredSchedule] = []
    for config in apps.get_app_configs():
        if only is not None and config.label != only:
            continue
        name = f"{config.name}.upkeep"
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        origin = _origin_of(module)
        for declared in getattr(module, "SCHEDULES", ()):
            if not isinstance(declared, DeclaredSchedule):
                raise DeclarationError(
                    repr(declared), origin, "SCHEDULES", "not a DeclaredSchedule"
                )
            found.append(declared if declared.origin else replace(declared, origin=origin))
    return found


def beat_schedule_declarations(beat_schedule: Mapping[str, Any]) -> list[DeclaredSchedule]:
    """Celery's `beat_schedule` entries as declarations (keyword arguments only, as the catalog
    takes them; a solar schedule cannot be written as a phrase and is refused)."""
    found = []
    for name, entry in beat_schedule.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("task"), str):
            raise DeclarationError(name, BEAT_SCHEDULE_ORIGIN, "task", "missing: name a task")
        if entry.get("args"):
            raise DeclarationError(
                name, BEAT_SCHEDULE_ORIGIN, "args", "catalog tasks take keyword arguments only"
            )
        options = entry.get("options") or {}
        found.append(
            DeclaredSchedule(
                name=name,
                task=entry["task"],
                schedule=_phrase(name, entry.get("schedule")),
                timezone=str(getattr(settings, "CELERY_TIMEZONE", None) or "UTC"),
                params=dict(entry.get("kwargs") or {}),
                queue=options.get("queue"),
                description=str(entry.get("description", "")),
                origin=BEAT_SCHEDULE_ORIGIN,
            )
        )
    return found


def _phrase(name: str, schedule: Any) -> str:
    """A beat_schedule's `schedule` as a phrase our parser reads: seconds or a cron line."""
    if isinstance(schedule, celery_schedules.schedule) and not isinstance(
        schedule, celery_schedules.crontab
    ):
        schedule = getattr(schedule, "run_every", schedule)  # celery.schedules.schedule(timedelta)
    if isinstance(schedule, timedelta):
        schedule = schedule.total_seconds()
    if isinstance(schedule, int | float) and not isinstance(schedule, bool):
        if not math.isfinite(schedule) or schedule < 1 or schedule != int(schedule):
            raise DeclarationError(
                name, BEAT_SCHEDULE_ORIGIN, "schedule", "a whole number of seconds, at least 1"
            )
        return f"every {int(schedule)} seconds"
    if isinstance(schedule, celery_schedules.crontab):
        fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        return " ".join(str(getattr(schedule, f"_orig_{part}")) for part in fields)
    raise DeclarationError(
        name,
        BEAT_SCHEDULE_ORIGIN,
        "schedule",
        f"{type(schedule).__name__} is not supported: use seconds, a timedelta or a crontab",
    )


def declared_schedules(*, beat_schedule: Mapping[str, Any] | None = None) -> list[DeclaredSchedule]:
    """Every declaration: the apps' `upkeep` modules, then `beat_schedule` (default: the Celery
    app's, which CELERY_BEAT_SCHEDULE fills). A name declared twice is an error naming both."""
    if beat_schedule is None:
        beat_schedule = current_app.conf.beat_schedule or {}
    declared = [*app_declarations(), *beat_schedule_declarations(beat_schedule)]
    _check_unique(declared)
    return declared


def _check_unique(declared: Iterable[DeclaredSchedule]) -> None:
    seen: dict[str, str] = {}
    for item in declared:
        if item.name in seen:
            raise DeclarationError(
                item.name, item.origin, "name", f"declared again (first in {seen[item.name]})"
            )
        seen[item.name] = item.origin


def row_fields(periodic_task: PeriodicTask) -> dict[str, Any]:
    """What the periodic task holds now, field by field as a declaration states it."""
    options = options_of(periodic_task)
    try:
        params: Any = json.loads(periodic_task.kwargs or "{}")
    except json.JSONDecodeError:
        params = periodic_task.kwargs  # written by hand as non-JSON: differs from any declaration
    return {
        "task": periodic_task.task,
        "schedule": options.phrase if options and options.phrase else stock_schedule(periodic_task),
        "timezone": options.timezone if options else "UTC",
        "params": params,
        "queue": periodic_task.queue or None,
        "description": periodic_task.description,
        "overlap": options.overlap if options else "default",
        "catchup": options.catchup if options else DECLARED_DEFAULTS["catchup"],
        "catchup_window": options.catchup_window if options else None,
        "jitter": options.jitter if options else 0,
        "start_time": _iso(periodic_task.start_time),
        "end_time": _iso(periodic_task.expires),
        "max_runs": options.max_runs if options else None,
        "pause_after_failures": options.pause_after_failures if options else None,
        "enabled": periodic_task.enabled,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def last_synced_value(last: Mapping[str, Any], name: str) -> Any:
    """The value the last sync applied to field `name`; for a field it did not record (the
    sync came before the field was declared), the value the row had then."""
    if name in last:
        return last[name]
    if name == "catchup" and last.get("misfire") in CATCHUP_PRESETS:
        return CATCHUP_PRESETS[last["misfire"]][0]
    return DECLARED_DEFAULTS.get(name)


@dataclass(frozen=True)
class Differences:
    """Where a periodic task differs from its declaration: field -> (in the database, in code).

    `from_code`: the declaration changed since the last sync and staff left the field alone
    (sync applies it). `drift`: staff changed the field since the last sync, or the row was
    there before it was declared (sync reports it; `--force` or "reset to code" applies it).
    """

    from_code: dict[str, tuple[Any, Any]]
    drift: dict[str, tuple[Any, Any]]


def differences(
    declared: Mapping[str, Any],
    current: Mapping[str, Any],
    last: Mapping[str, Any] | None,
    *,
    names: Iterable[str] = DECLARED_FIELDS,
) -> Differences:
    """Compare a declaration with the row, knowing what the last sync applied (`last`);
    `names`: the fields compared (an alert rule's or channel's, declared_alerts.py)."""
    from_code: dict[str, tuple[Any, Any]] = {}
    drift: dict[str, tuple[Any, Any]] = {}
    for name in names:
        want, have = declared.get(name), current.get(name)
        if want == have:
            continue
        if (
            last is not None
            and (name in last or name in DECLARED_DEFAULTS)
            and (last_synced_value(last, name) == have)
        ):
            from_code[name] = (have, want)
        else:
            drift[name] = (have, want)
    return Differences(from_code=from_code, drift=drift)


# Compared without the catalog (beat does not read it): the services fill in parameter
# defaults and the task's queue, so those two are compared with what the last sync applied only.
_AS_WRITTEN = tuple(name for name in DECLARED_FIELDS if name not in ("params", "queue"))


def unsynced(
    declared: Iterable[DeclaredSchedule],
    rows: Mapping[str, PeriodicTask],
    synced: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """name -> why its periodic task differs from what code declares: missing, not synced since
    the declaration changed, or changed by staff since the last sync (`synced`: name -> the
    declaration the last sync applied). What beat warns about at start."""
    found: dict[str, str] = {}
    for item in declared:
        row, last = rows.get(item.name), synced.get(item.name)
        if row is None:
            found[item.name] = "missing"
        elif last is None:
            found[item.name] = "never synced"
        elif any(
            last_synced_value(last, name) != value
            for name, value in item.fields().items()
            if name in _AS_WRITTEN
        ):
            found[item.name] = "declaration changed since the last sync"
        elif changed := [n for n, v in row_fields(row).items() if last_synced_value(last, n) != v]:
            found[item.name] = f"changed by staff: {', '.join(changed)}"
    return found


def drifted_fields(row: PeriodicTask, last: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """field -> (in the database, as the last sync applied it) for each field staff changed
    since (`last`: the declaration the last sync applied, normalized as stored)."""
    return {
        name: (value, last_synced_value(last, name))
        for name, value in row_fields(row).items()
        if (name in last or name in DECLARED_DEFAULTS) and last_synced_value(last, name) != value
    }


@dataclass(frozen=True)
class DeclaredIn:
    """Where code declares a periodic task, and what staff changed in it since the last sync."""

    origin: str
    drift: dict[str, tuple[Any, Any]]


def declared_in(periodic_task: PeriodicTask) -> DeclaredIn | None:
    """None for a periodic task code does not declare (made in the admin, the API, the CLI)."""
    try:
        state = cast(Any, periodic_task).declared
    except ObjectDoesNotExist:
        return None
    return DeclaredIn(origin=state.origin, drift=drifted_fields(periodic_task, state.fields))
