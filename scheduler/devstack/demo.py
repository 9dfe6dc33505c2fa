"""Demo schedules: enough periodic work for a newcomer to see the system run."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_celery_beat.models import PeriodicTask

from scheduler.models import Source
from scheduler.services import schedule_create
from scheduler.services.retention import CLEANUP_SCHEDULE_NAME

DEMO_PING_NAME = "demo: ping every minute"
# Not a demo schedule: migration scheduler/0004 creates it on every deployment, once, and the
# demo never makes it again (staff who deleted it meant it).
CLEANUP_NAME = CLEANUP_SCHEDULE_NAME

# name -> schedule_create arguments
DEMO_SCHEDULES: dict[str, dict[str, Any]] = {
    DEMO_PING_NAME: {
        "task": "scheduler.ping",
        "schedule": "every minute",
        "description": "Demo: a ping every minute, so the results list fills up.",
    },
}


@transaction.atomic
def seed_demo_schedules() -> list[str]:
    """Create the demo periodic tasks that are missing; never touch rows that exist."""
    existing = set(
        PeriodicTask.objects.filter(name__in=DEMO_SCHEDULES).values_list("name", flat=True)
    )
    created: list[str] = []
    for name, arguments in DEMO_SCHEDULES.items():
        if name in existing:
            continue
        schedule_create(name=name, source=Source.SYSTEM, **arguments)
        created.append(f"periodic task '{name}'")
    return created
