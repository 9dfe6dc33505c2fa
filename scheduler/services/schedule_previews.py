"""A dry run of a schedule and its policies: what saving them would make, with nothing saved.

The API's `POST /api/schedules/preview/` and `scheduler parse` read the values as saving them
would (`schedule_parse`, `policies_check`, the catalog for the task), build an unsaved
PeriodicTask with unsaved schedule rows and options, and ask `schedule_preview` what it will do:
the same function, and so the same runs, effects and cut-off, as the admin's form preview.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduler.catalog import UnknownTaskError, load_catalog, overlap_resolved
from scheduler.models import ScheduleOptions
from scheduler.schedules.parsing import ParsedSchedule
from scheduler.schedules.policies import OverlapPolicy
from scheduler.schedules.preview import SCHEDULE_PREVIEW_RUNS, SchedulePreview, schedule_preview
from scheduler.services.errors import ScheduleError
from scheduler.services.schedule_policies import PolicyChanges, policies_check
from scheduler.services.schedules import schedule_fields_unsaved, schedule_parse


@dataclass(frozen=True)
class ScheduleDryRun:
    """The schedule as read (kind, cron, description) and what it would do."""

    parsed: ParsedSchedule
    preview: SchedulePreview


def schedule_dry_run(
    *,
    schedule: str,
    tz: str = "UTC",
    now: datetime | None = None,
    count: int = SCHEDULE_PREVIEW_RUNS,
    task: str | None = None,
    overlap: str | None = None,
    misfire: str | None = None,
    catchup: str | None = None,
    catchup_window: Any = None,
    jitter: Any = None,
    start_time: Any = None,
    end_time: Any = None,
    max_runs: Any = None,
    one_off: bool = False,
) -> ScheduleDryRun:
    """The preview of a new schedule with these policies (None: not given, the default of a
    new schedule), or ScheduleError naming every bad field, as `schedule_create` names them.

    `task`: a catalog task, for the overlap policy it declares (overlap `default`)."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    parsed: ParsedSchedule | None = None
    try:
        parsed = schedule_parse(schedule=schedule, tz=tz, now=now)
    except ScheduleError as exc:
        errors.update(exc.errors)
    task_overlap = None
    if task:
        try:
            load_catalog().get(task)
        except UnknownTaskError as exc:
            errors["task"] = [str(exc)]
        else:
            task_overlap = overlap_resolved(task, None).value
    given = {
        "overlap": overlap,
        "misfire": misfire,
        "catchup": catchup,
        "catchup_window": catchup_window,
        "jitter": jitter,
        "start_time": start_time,
        "end_time": end_time,
        "max_runs": max_runs,
    }
    changes = PolicyChanges()
    try:
        # For a new schedule, a value not given and None are alike: the default.
        changes = policies_check(
            {name: value for name, value in given.items() if value is not None}, tz=tz, now=now
        )
    except ScheduleError as exc:
        errors.update(exc.errors)
    if errors:
        raise ScheduleError(errors)
    assert parsed is not None

    periodic_task = PeriodicTask(task=task or "", enabled=True, **changes.task)
    for name, value in schedule_fields_unsaved(parsed).items():
        setattr(periodic_task, name, value)
    periodic_task.one_off = periodic_task.one_off or one_off
    # Read through the task (`periodic_task.options`), as a saved row's options are.
    ScheduleOptions(
        periodic_task=periodic_task,
        phrase=" ".join(schedule.split()),
        timezone=parsed.timezone,
        **{"overlap": OverlapPolicy.DEFAULT, **changes.options},
    )
    preview = schedule_preview(periodic_task, now=now, count=count, task_overlap=task_overlap)
    return ScheduleDryRun(parsed=parsed, preview=preview)
