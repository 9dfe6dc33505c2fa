from __future__ import annotations

from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"

    def ready(self) -> None:
        # Registers checks, connects receivers, registers the scheduler's retention policies.
        from scheduler import checks, retention, signals  # noqa: F401
