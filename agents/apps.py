from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Registers the messages' retention, the agent as a target of alert rules, as the
        # owner of the schedules whose task takes an `agent` parameter, and how its schedules
        # are found for the group controls.
        from agents import alerting, owners, ownership, retention  # noqa: F401

    def seed_demo(self) -> list[str]:
        """The agents' demo rows `manage.py seed_demo` creates, those that are missing."""
        # Function-level: the demo uses models, which the app registry loads after this module.
        from agents.demo import seed_demo_agents

        return seed_demo_agents()
