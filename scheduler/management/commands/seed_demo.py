"""`manage.py seed_demo`: create the demo rows that are missing. Safe to run again."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from agents.demo import seed_demo_agents
from scheduler.demo import seed_demo_schedules


class Command(BaseCommand):
    help = "Create demo agents and schedules that do not exist yet; never deletes anything."

    def handle(self, *args: Any, **options: Any) -> None:
        created = [*seed_demo_agents(), *seed_demo_schedules()]
        if not created:
            self.stdout.write("Demo data already present: nothing to do.")
            return
        for item in created:
            self.stdout.write(f"Created {item}")
