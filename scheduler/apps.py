from __future__ import annotations

from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"

    def ready(self) -> None:
        # Function-level: these modules use models, which the app registry loads first.
        # Registers checks, connects the worker's signal receivers, registers the scheduler's
        # retention policies, and connects the receivers that turn every save or delete of a
        # periodic task or schedule row (in any process) into a change notice for beat; and
        # alerting: run events to the alert engine, its watcher in workers and beat.
        from scheduler import checks  # noqa: F401
        from scheduler.beat import changes
        from scheduler.services import retention  # noqa: F401
        from scheduler.system import alert_wiring
        from scheduler.worker import receivers  # noqa: F401

        changes.connect()
        alert_wiring.connect()
