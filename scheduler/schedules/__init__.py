"""Schedules, pure: phrases and cron parsed and described, the next runs with their DST warnings,
and the overlap and misfire policies a schedule can have. No database writes, no Redis.

The names other rooms use are re-exported here. Modules inside `scheduler/` import them by their
full path (`scheduler.schedules.parsing`), so that no import depends on the order this file binds
its names; other apps import from here.
"""

from __future__ import annotations

from scheduler.schedules.declared import (
    DeclarationError,
    DeclaredSchedule,
    app_declarations,
    declared_schedules,
)
from scheduler.schedules.declared_alerts import (
    AlertDeclarations,
    DeclaredChannel,
    DeclaredRule,
    declared_alerts,
)
from scheduler.schedules.parsing import (
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
from scheduler.schedules.pauses import Pause, pause_dict, pause_of
from scheduler.schedules.policies import MisfirePolicy, OverlapPolicy
from scheduler.schedules.preview import Preview, format_run, periodic_task_preview
from scheduler.schedules.rows import (
    crontab_spec_of,
    periodic_task_next_runs,
    periodic_task_schedule,
    schedule_describe,
)

__all__ = [
    "AlertDeclarations",
    "CrontabSpec",
    "DeclarationError",
    "DeclaredChannel",
    "DeclaredRule",
    "DeclaredSchedule",
    "IntervalSpec",
    "MisfirePolicy",
    "OverlapPolicy",
    "ParsedSchedule",
    "Pause",
    "Period",
    "Preview",
    "ScheduleParseError",
    "app_declarations",
    "crontab_spec_of",
    "declared_alerts",
    "declared_schedules",
    "describe_crontab",
    "describe_interval",
    "format_run",
    "parse_schedule",
    "pause_dict",
    "pause_of",
    "periodic_task_next_runs",
    "periodic_task_preview",
    "periodic_task_schedule",
    "schedule_describe",
    "zone_named",
]
