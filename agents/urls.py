"""The agents' pages, mounted under `/agents/` by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, path, re_path

from agents import views

urlpatterns: list[URLPattern] = [
    path("", views.agent_list, name="agents"),
    # Digits only, and no more than a database integer holds: anything else is a 404.
    re_path(r"^sessions/(?P<session_id>[0-9]{1,18})/$", views.chat, name="agents-chat"),
    path("<slug:slug>/chats/", views.chat_start, name="agents-chat-start"),
]
