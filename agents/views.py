"""The agents' pages: the list of agents with their sessions, and a session's live chat.

Both are for staff who may watch the dashboard (`dashboard_access`). The chat page renders the
conversation, then its script (static/agents/chat.js) sends messages through the API with the
session cookie and its CSRF token, and shows replies as they arrive on the session's websocket
group (`/ws/events/?object=session:<id>`).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from agents.api.permissions import ADD_MESSAGE, ADD_SESSION
from agents.models import Session
from agents.selectors import (
    agent_by_slug,
    agents_with_recent_sessions,
    session_by_id,
    session_latest_messages,
)
from agents.services import AgentInputError, message_payload, session_open
from scheduler.dashboard import alerts_config, dashboard_access
from scheduler.permissions import staff_has

# The chat page renders the latest messages; older ones are in GET /api/sessions/<id>/messages/.
MESSAGES_SHOWN = 200
# Session events the chat page's websocket asks for first (after a reconnect: what it missed).
EVENTS_BACKFILL = 50
RECENT_SESSIONS = 10


@require_GET
@never_cache
@dashboard_access()
def agent_list(request: HttpRequest) -> HttpResponse:
    context = {
        "agents": agents_with_recent_sessions(recent=RECENT_SESSIONS),
        "recent_count": RECENT_SESSIONS,
        "can_start": staff_has(request.user, ADD_SESSION),
    }
    return render(request, "agents/agent_list.html", context)


@require_POST
@dashboard_access()
def chat_start(request: HttpRequest, slug: str) -> HttpResponse:
    """A new web session with the agent, then its chat page ("New chat")."""
    if not staff_has(request.user, ADD_SESSION):
        raise PermissionDenied(f"a new chat needs {ADD_SESSION}")
    agent = agent_by_slug(slug=slug)
    if agent is None:
        raise Http404(f"no agent with the slug {slug!r}")
    try:
        session = session_open(agent=agent, channel=Session.Channel.WEB, user=request.user)
    except AgentInputError as exc:
        messages.error(request, f"No chat was opened with {agent.name}: {exc}")
        return HttpResponseRedirect(reverse("agents"))
    return HttpResponseRedirect(reverse("agents-chat", args=[session.pk]))


@require_GET
@never_cache
@dashboard_access()
def chat(request: HttpRequest, session_id: str) -> HttpResponse:
    session = session_by_id(session_id=int(session_id))
    if session is None:
        raise Http404(f"no session with id {session_id}")
    shown, older_hidden = session_latest_messages(session_id=session.pk, limit=MESSAGES_SHOWN)
    can_send = staff_has(request.user, ADD_MESSAGE)
    is_open = session.status == Session.Status.OPEN
    config = {
        "session": session.pk,
        "ws_path": "/ws/events/",
        "ws_query": f"object=session:{session.pk}&backfill={EVENTS_BACKFILL}",
        # The agent's own runs (its schedules) are another group: alerts only, no backfill.
        "alerts_query": f"object=agent:{session.agent_id}&backfill=0",
        "alerts": alerts_config(),
        "messages_url": reverse("api-session-messages", args=[session.pk]),
        "task_url": reverse("dashboard-task", args=["__id__"]),
        "timezone": timezone.get_current_timezone_name(),
        "can_send": can_send and is_open,
        "max_length": settings.AGENT_MESSAGE_MAX_LENGTH,
    }
    context = {
        "session": session,
        "agent": session.agent,
        "chat_messages": [message_payload(m) | {"at": m.created_at} for m in shown],
        "older_hidden": older_hidden,
        "can_send": can_send,
        "is_open": is_open,
        "config": config,
        "admin_url": reverse("admin:agents_session_change", args=[session.pk]),
        "max_length": settings.AGENT_MESSAGE_MAX_LENGTH,
    }
    return render(request, "agents/chat.html", context)
