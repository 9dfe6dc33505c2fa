"""The scheduler's own periodic upkeep, declared in code: `manage.py scheduler sync` creates it
on every deployment (scheduler/schedules/declared.py explains declarations)."""

from __future__ import annotations

from scheduler.schedules import DeclaredSchedule
from scheduler.services.retention import CLEANUP_SCHEDULE_NAME

SCHEDULES = [
    # As migration 0004 first created it, so that a deployment migrated before declarations
    # existed is in sync.
    DeclaredSchedule(
        name=CLEANUP_SCHEDULE_NAME,
        task="scheduler.cleanup_results",
        schedule="every day at 3:30",
        queue="maintenance",
        description=(
            "Deletes what the history keeps no longer: task results, events, audit entries and "
            "ended tournaments' rounds older than their retention settings (*_RETENTION_DAYS)."
        ),
    ),
]
