from __future__ import annotations

from django.apps import AppConfig


class TournamentsConfig(AppConfig):
    name = "tournaments"
    verbose_name = "Tournaments"

    def ready(self) -> None:
        # Registers the retention of ended tournaments' decisions, trades and snapshots.
        from tournaments import retention  # noqa: F401

    def seed_demo(self) -> list[str]:
        """The tournaments' periodic tasks and demo tournament `manage.py seed_demo` creates,
        those that are missing."""
        # Function-level: the demo uses models, which the app registry loads after this module.
        from tournaments.demo import seed_demo_tournament, seed_tournament_schedules

        return [*seed_tournament_schedules(), *seed_demo_tournament()]
