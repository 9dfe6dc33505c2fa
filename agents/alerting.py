"""Alert rules may target an agent: the runs of its schedules carry its object header."""

from __future__ import annotations

from agents.models import Agent
from scheduler.services import alert_target_register


def agent_key(text: str) -> str:
    """An agent's slug (or id) -> the id its runs carry; ValueError when there is none."""
    agent = Agent.objects.filter(slug=text).first()
    if agent is None and text.isdigit():
        agent = Agent.objects.filter(pk=int(text)).first()
    if agent is None:
        raise ValueError(f"no agent with the slug or id {text!r}")
    return str(agent.pk)


alert_target_register("agent", "Agent", agent_key)
