"""Every websocket route, through the real ASGI app (origin check, session auth, URL router).

`config/routing.py`'s routes are walked like the URL conf, so a websocket route added later is
checked without being listed: a visitor is closed with 4401, a signed-in user who is not staff
(or staff without `scheduler.view_dashboard`) with 4403, and staff who may watch are accepted.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client

from config.asgi import application
from config.routing import websocket_urlpatterns
from scheduler.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from tests.factories import UserFactory
from tests.security.routes import Route, websocket_routes

pytestmark = [pytest.mark.security, pytest.mark.django_db(transaction=True)]

TIMEOUT = 5
RESOLVER, WEBSOCKET_ROUTES = websocket_routes(websocket_urlpatterns)


def _ids(route: Route) -> str:
    return route.template


def _user(kind: str) -> Any:
    if kind == "anonymous":
        return None
    user = UserFactory.create(is_staff=kind != "not staff")
    if kind == "staff who may watch":
        user.user_permissions.add(Permission.objects.get(codename="view_dashboard"))
    return user


def _headers(user: Any) -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def _open(route: Route, kind: str) -> tuple[WebsocketCommunicator, bool]:
    user = await database_sync_to_async(_user)(kind)
    headers = await database_sync_to_async(_headers)(user)
    url = route.url({}, resolver=RESOLVER)
    communicator = WebsocketCommunicator(application, f"{url}?backfill=0", headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


@pytest.mark.asyncio
@pytest.mark.parametrize("route", WEBSOCKET_ROUTES, ids=_ids)
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("anonymous", CLOSE_UNAUTHENTICATED),
        ("not staff", CLOSE_FORBIDDEN),
        ("staff without permission", CLOSE_FORBIDDEN),
    ],
)
async def test_it_closes_every_websocket_route_on_who_may_not_watch(route, kind, code):
    communicator, connected = await _open(route, kind)

    # Accepted first, so the close carries the application's code rather than an HTTP 403.
    assert connected
    assert await communicator.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": code,
    }
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.parametrize("route", WEBSOCKET_ROUTES, ids=_ids)
async def test_it_accepts_staff_who_may_watch_on_every_websocket_route(route):
    communicator, connected = await _open(route, "staff who may watch")

    assert connected
    # Whatever the consumer sends first (the events one sends a backfill), it is not a close.
    try:
        first = await communicator.receive_output(timeout=1)
    except TimeoutError:
        first = {"type": "nothing sent"}
    assert first["type"] != "websocket.close", first
    await communicator.disconnect()


def test_it_walks_the_websocket_routes_of_every_app():
    assert "ws/events/" in [route.template for route in WEBSOCKET_ROUTES]
