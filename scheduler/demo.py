"""Demo schedules: enough periodic work for a newcomer to see the system run."""

from __future__ import annotations

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

DEMO_PING_NAME = "demo: ping every minute"


@transaction.atomic
def seed_demo_schedules() -> list[str]:
    """Create the demo periodic tasks that are missing; never touch rows that exist."""
    created: list[str] = []
    every_minute, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.MINUTES
    )
    _, was_created = PeriodicTask.objects.get_or_create(
        name=DEMO_PING_NAME,
        defaults={
            "task": "scheduler.ping",
            "interval": every_minute,
            "description": "Demo: a ping every minute, so the results list fills up.",
            "queue": "default",
        },
    )
    if was_created:
        created.append(f"periodic task '{DEMO_PING_NAME}'")
    return created
