"""Demo schedules: enough periodic work for a newcomer to see the system run."""

from __future__ import annotations

from django.db import transaction
from django_celery_beat.models import PeriodicTask

from scheduler.models import Source
from scheduler.services import schedule_create

DEMO_PING_NAME = "demo: ping every minute"


@transaction.atomic
def seed_demo_schedules() -> list[str]:
    """Create the demo periodic tasks that are missing; never touch rows that exist."""
    created: list[str] = []
    if not PeriodicTask.objects.filter(name=DEMO_PING_NAME).exists():
        schedule_create(
            name=DEMO_PING_NAME,
            task="scheduler.ping",
            schedule="every minute",
            description="Demo: a ping every minute, so the results list fills up.",
            source=Source.SYSTEM,
        )
        created.append(f"periodic task '{DEMO_PING_NAME}'")
    return created
