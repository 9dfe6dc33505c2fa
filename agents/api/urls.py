"""Routes of the agents' API, mounted under `/api/` by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, re_path

from agents.api import views

# Digits only, and no more than a database integer holds: anything else is a 404.
SESSION = r"(?P<session_id>[0-9]{1,18})"

urlpatterns: list[URLPattern | URLResolver] = [
    path("sessions/", views.SessionListView.as_view(), name="api-session-list"),
    re_path(
        rf"^sessions/{SESSION}/$", views.SessionDetailView.as_view(), name="api-session-detail"
    ),
    re_path(
        rf"^sessions/{SESSION}/messages/$",
        views.SessionMessagesView.as_view(),
        name="api-session-messages",
    ),
    path("agents/<slug:slug>/run/", views.AgentRunView.as_view(), name="api-agent-run"),
    path("inbound/<slug:slug>/", views.InboundView.as_view(), name="api-inbound"),
]
