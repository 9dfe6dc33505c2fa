"""Demo agents for a newcomer's first run: one to chat with, one that posts every morning."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.models import Agent, AgentSchedule, Message, Session
from agents.services import agent_create, agent_schedule_create

DEMO_AGENT_SLUG = "demo-assistant"
DEMO_POSTER_SLUG = "demo-poster"
DEMO_POST_SCHEDULE = "demo-poster: daily technology news"

_ASSISTANT_CONFIG: dict[str, Any] = {
    "greeting": "Hello! I am the demo assistant. Ask me about schedules, tasks or agents.",
    "keywords": {
        "schedule": "Schedules live in the admin under Periodic tasks; beat runs them.",
        "help": "Try 'schedule', 'task' or 'agent', or say anything: I echo what I don't know.",
        "task": "Every task comes from the catalog: see /api/catalog/ or the admin.",
        "agent": "Agents have a brain: 'rules' (offline, like me) or 'openai' (any LLM server).",
    },
}


@transaction.atomic
def seed_demo_agents() -> list[str]:
    """Create the demo agents, their session and schedules that are missing; never touch rows
    that exist."""
    created: list[str] = []
    assistant = Agent.objects.filter(slug=DEMO_AGENT_SLUG).first()
    if assistant is None:
        assistant = agent_create(
            name="Demo assistant", slug=DEMO_AGENT_SLUG, brain_config=_ASSISTANT_CONFIG
        )
        created.append(f"agent '{DEMO_AGENT_SLUG}'")
    if not Session.objects.filter(agent=assistant).exists():
        # The greeting is the session's last message: lists sort and show sessions by it.
        greeted_at = timezone.now()
        session = Session.objects.create(agent=assistant, last_message_at=greeted_at)
        Message.objects.create(
            session=session,
            role=Message.Role.ASSISTANT,
            content=_ASSISTANT_CONFIG["greeting"],
            created_at=greeted_at,
        )
        created.append(f"chat session {session.pk} (/agents/sessions/{session.pk}/)")
    poster = Agent.objects.filter(slug=DEMO_POSTER_SLUG).first()
    if poster is None:
        poster = agent_create(
            name="Demo poster",
            slug=DEMO_POSTER_SLUG,
            kind=Agent.Kind.POSTER,
            brain_config={"post_template": "{agent} on {topic}: three things worth a look today."},
        )
        created.append(f"agent '{DEMO_POSTER_SLUG}'")
    if not AgentSchedule.objects.filter(periodic_task__name=DEMO_POST_SCHEDULE).exists():
        agent_schedule_create(
            agent=poster,
            name=DEMO_POST_SCHEDULE,
            task="agents.post",
            schedule="every day at 9am",
            params={"agent": DEMO_POSTER_SLUG, "topic": "technology news"},
        )
        created.append(f"periodic task '{DEMO_POST_SCHEDULE}'")
    return created
