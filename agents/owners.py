"""Schedules belong to the agent their task's `agent` parameter names (its slug), whichever
interface makes or changes them: linked here (`AgentSchedule`), so that they show on the agent's
page and its "Pause all schedules" covers them (scheduler/services/owners.py)."""

from __future__ import annotations

from django_celery_beat.models import PeriodicTask

from agents.models import Agent, AgentSchedule
from scheduler.services import schedule_owner_register


def agent_id_of(value: object) -> int | None:
    """The id of the agent a slug names, or None."""
    if not isinstance(value, str):
        return None
    return Agent.objects.filter(slug=value).values_list("pk", flat=True).first()


def agent_schedule_link(periodic_task: PeriodicTask, agent_id: object) -> None:
    # One agent per periodic task (a one-to-one): a schedule whose agent changed moves.
    AgentSchedule.objects.update_or_create(
        periodic_task=periodic_task, defaults={"agent_id": agent_id}
    )


schedule_owner_register("agent", params=("agent",), resolve=agent_id_of, link=agent_schedule_link)
