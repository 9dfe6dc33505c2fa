"""`manage.py seed_demo`: create the demo rows that are missing. Safe to run again.

Each app contributes its own demo: the scheduler's schedules first (scheduler/devstack/demo.py),
then every installed app whose `AppConfig` has a `seed_demo()` method, in INSTALLED_APPS order.
The method creates what is missing and returns a line per row it created ("agent 'x'").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from redis.exceptions import RedisError

from scheduler.core.redis_connection import get_redis
from scheduler.devstack.demo import seed_demo_schedules
from scheduler.live.publisher import publisher


def demo_seeders() -> list[Callable[[], list[str]]]:
    """The scheduler's demo, then each other app's (`AppConfig.seed_demo`), in order."""
    seeders: list[Callable[[], list[str]]] = [seed_demo_schedules]
    for config in apps.get_app_configs():
        seed = getattr(config, "seed_demo", None)
        if config.name != "scheduler" and callable(seed):
            seeders.append(seed)
    return seeders


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
            created = [line for seed in demo_seeders() for line in seed()]
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
