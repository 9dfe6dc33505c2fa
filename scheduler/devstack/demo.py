"""Demo schedules: enough periodic work for a newcomer to see the system run."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django_celery_beat.models import PeriodicTask

from scheduler.models import AlertChannel, AlertRule, Source
from scheduler.services import RuleInput, channel_save, rule_save, schedule_create
from scheduler.services.retention import CLEANUP_SCHEDULE_NAME

DEMO_PING_NAME = "demo: ping every minute"
DEMO_FLAKY_NAME = "demo: flaky report"
DEMO_CHANNEL_NAME = "demo: email the on-call"
DEMO_RULE_NAME = "demo: flaky report failed"
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
    DEMO_FLAKY_NAME: {
        "task": "scheduler.flaky",
        "schedule": "every 30 seconds",
        "params": {"pattern": "FS"},
        "description": "Demo: fails every other run, so its alert opens and recovers.",
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
    return created + seed_demo_alerts()


def seed_demo_alerts() -> list[str]:
    """An email channel to the on-call (printed by the console backend while DEBUG) and a rule
    on the flaky demo schedule: an incident and its email at each failure, the recovery at the
    next success. Rows that exist are left alone."""
    created: list[str] = []
    if not AlertChannel.objects.filter(name=DEMO_CHANNEL_NAME).exists():
        channel_save(
            name=DEMO_CHANNEL_NAME,
            kind="email",
            config={"to": ["oncall@example.com"]},
            source=Source.SYSTEM,
        )
        created.append(f"alert channel '{DEMO_CHANNEL_NAME}'")
    if not AlertRule.objects.filter(name=DEMO_RULE_NAME).exists():
        rule_save(
            RuleInput(
                name=DEMO_RULE_NAME,
                trigger=AlertRule.Trigger.FAILED,
                target_type=AlertRule.Target.SCHEDULE,
                target=DEMO_FLAKY_NAME,
                channels=[DEMO_CHANNEL_NAME],
                description="Demo: tells the on-call when the flaky report fails, and recovers.",
            ),
            source=Source.SYSTEM,
        )
        created.append(f"alert rule '{DEMO_RULE_NAME}'")
    return created
