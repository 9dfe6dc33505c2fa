"""`manage.py seed_demo`: create the demo rows that are missing. Safe to run again."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand
from redis.exceptions import RedisError

from agents.demo import seed_demo_agents
from scheduler.core.redis_connection import get_redis
from scheduler.devstack.demo import seed_demo_schedules
from scheduler.live.publisher import publisher
from tournaments.demo import seed_demo_tournament, seed_tournament_schedules


def _redis_answers() -> bool:
    try:
        return bool(get_redis().ping())
    except (RedisError, OSError):
        return False


class Command(BaseCommand):
    help = "Create demo agents and schedules that do not exist yet; never deletes anything."

    def handle(self, *args: Any, **options: Any) -> None:
        quiet: dict[str, int] = {}
        if not _redis_answers():
            # Seeded by hand with no Redis running (`stack up --seed-demo` seeds once Redis
            # answers): the changes are stored and beat reads them when it starts, so the live
            # notices are not missed. Say it once.
            self.stdout.write("Redis is not running yet: nothing is sent live (beat reads it all).")
            for name in (
                "scheduler.live.publisher",
                "scheduler.beat.changes",
                "scheduler.observability.metrics",
            ):
                quiet[name] = logging.getLogger(name).level
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            created = [
                *seed_demo_agents(),
                *seed_demo_schedules(),
                *seed_tournament_schedules(),
                *seed_demo_tournament(),
            ]
            if quiet:
                publisher().flush(timeout=5)  # the log rows, while the warnings are quiet
        finally:
            for name, level in quiet.items():
                logging.getLogger(name).setLevel(level)
        if not created:
            self.stdout.write("Demo data already present: nothing to do.")
            return
        for item in created:
            self.stdout.write(f"Created {item}")
