from __future__ import annotations

from django.apps import AppConfig


class TournamentsConfig(AppConfig):
    name = "tournaments"
    verbose_name = "Tournaments"

    def ready(self) -> None:
        # Registers the retention of ended tournaments' decisions, trades and snapshots.
        from tournaments import retention  # noqa: F401
