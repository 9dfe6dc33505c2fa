"""An agent owns schedules: `manage.py scheduler pause|resume|run --agent SLUG` (and `clear
--agent`) act on those of `agents_schedule_names`, as the agent admin's "Pause all schedules"
does."""

from __future__ import annotations

from agents.models import Agent
from agents.services import agents_schedule_names
from scheduler.services import owner_group_register


def agent_schedules(key: str, action: str) -> list[str]:
    """The names of the periodic tasks of the agent with slug (or id) `key`; LookupError when
    there is none. Any of them may be paused, resumed or run."""
    agent = Agent.objects.filter(slug=key).first()
    if agent is None and key.isdigit():
        agent = Agent.objects.filter(pk=int(key)).first()
    if agent is None:
        raise LookupError(f"no agent with the slug or id {key!r}")
    return agents_schedule_names(agents=[agent])


owner_group_register("agent", "Agent", agent_schedules)
