from __future__ import annotations

from django.apps import AppConfig


class TournamentsConfig(AppConfig):
    name = "tournaments"
    verbose_name = "Tournaments"

    def ready(self) -> None:
        # Registers the retention of ended tournaments' decisions, trades and snapshots, the
        # tournament as a target of alert rules, as the owner of the schedules whose task takes
        # a `tournament_id` parameter, and how its schedules are found for the group controls.
        from tournaments import alerting, owners, ownership, retention  # noqa: F401

    def seed_demo(self) -> list[str]:
        """The demo tournament `manage.py seed_demo` creates when it is missing (the periodic
        upkeep is declared in tournaments/upkeep.py: `scheduler sync` creates it)."""
        # Function-level: the demo uses models, which the app registry loads after this module.
        from tournaments.demo import seed_demo_tournament

        return seed_demo_tournament()
