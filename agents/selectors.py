"""Reads for the agents' pages, API and admin."""

from __future__ import annotations

from django.db.models import Count, Prefetch, QuerySet
from django.db.models.functions import Coalesce
from django_celery_results.models import TaskResult

from agents.models import Agent, AgentSchedule, Message, Session

# --- Agents --------------------------------------------------------------------------------------


def agent_by_slug(*, slug: str) -> Agent | None:
    return Agent.objects.filter(slug=slug).first()


def agents_with_recent_sessions(*, recent: int) -> QuerySet[Agent]:
    """Agents by name, each with `session_count` and its latest `recent` sessions (latest
    activity first) in `recent_sessions`."""
    # A session without messages yet counts from when it was opened.
    latest = Session.objects.order_by(Coalesce("last_message_at", "created_at").desc(), "-id")
    return (
        Agent.objects.annotate(session_count=Count("sessions"))
        .prefetch_related(Prefetch("sessions", queryset=latest[:recent], to_attr="recent_sessions"))
        .order_by("name", "pk")
    )


def agent_schedule_of(*, agent: Agent, schedule_id: int) -> AgentSchedule | None:
    return (
        AgentSchedule.objects.select_related("periodic_task")
        .filter(agent=agent, pk=schedule_id)
        .first()
    )


def periodic_task_last_result(*, name: str) -> TaskResult | None:
    return (
        TaskResult.objects.filter(periodic_task_name=name)
        .order_by("-date_created", "-pk")
        .only("pk", "status", "date_done")
        .first()
    )


# --- Sessions ------------------------------------------------------------------------------------


def session_by_id(*, session_id: int) -> Session | None:
    return Session.objects.select_related("agent", "user").filter(pk=session_id).first()


def sessions_listed(
    *, agent_slug: str | None = None, channel: str | None = None, status: str | None = None
) -> QuerySet[Session]:
    """Sessions with their agent, latest activity first; a filter left empty is not applied."""
    filters = {
        key: value
        for key, value in (("agent__slug", agent_slug), ("channel", channel), ("status", status))
        if value
    }
    return (
        Session.objects.select_related("agent")
        .filter(**filters)
        .order_by("-last_message_at", "-id")
    )


# --- Messages ------------------------------------------------------------------------------------


def session_messages(*, session_id: int) -> QuerySet[Message]:
    return Message.objects.filter(session_id=session_id).order_by("created_at", "id")


def _latest_first(session_id: int) -> QuerySet[Message]:
    return Message.objects.filter(session_id=session_id).order_by("-created_at", "-id")


def session_latest_messages(*, session_id: int, limit: int) -> tuple[list[Message], bool]:
    """The session's latest `limit` messages, oldest first, and whether it has older ones."""
    latest = list(_latest_first(session_id)[: limit + 1])
    return list(reversed(latest[:limit])), len(latest) > limit


def session_latest_message_ids(*, session_id: int, limit: int) -> list[int]:
    return list(_latest_first(session_id).values_list("pk", flat=True)[:limit])
