"""Websocket routes of every app, mounted by config/asgi.py behind auth and origin checks."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from scheduler.live import websocket_urlpatterns as scheduler_websockets

websocket_urlpatterns: list[URLPattern | URLResolver] = [*scheduler_websockets]
