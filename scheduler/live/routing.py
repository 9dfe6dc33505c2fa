"""Websocket routes of the scheduler app."""

from __future__ import annotations

from django.urls import path

from scheduler.live.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
]
