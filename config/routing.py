"""Websocket routes of every app, mounted by config/asgi.py behind auth and origin checks."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

websocket_urlpatterns: list[URLPattern | URLResolver] = []
