"""Demo agents for a newcomer's first run."""

from __future__ import annotations

from django.db import transaction

from agents.models import Agent

DEMO_AGENT_SLUG = "demo-assistant"


@transaction.atomic
def seed_demo_agents() -> list[str]:
    """Create the demo agents that are missing; never touch rows that exist."""
    _, created = Agent.objects.get_or_create(
        slug=DEMO_AGENT_SLUG,
        defaults={
            "name": "Demo assistant",
            "kind": Agent.Kind.CHAT,
            "brain": Agent.Brain.RULES,
        },
    )
    return [f"agent '{DEMO_AGENT_SLUG}'"] if created else []
