"""Every websocket route, through the real ASGI app (origin check, session auth, URL router).

`config/routing.py`'s routes are walked like the URL conf, so a websocket route added later is
checked without being listed: a visitor is closed with 4401, a signed-in user who is not staff
(or staff without `scheduler.view_dashboard`) with 4403, and staff who may watch are accepted.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token

from config.asgi import application
from config.routing import websocket_urlpatterns
from scheduler.live.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from scheduler.live.ws_auth import CLOSE_NOT_FOUND
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


# --- a path no route serves ----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["anonymous", "staff who may watch"])
@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/events/extra/", "/", "/ws/events"])
async def test_a_path_no_route_serves_is_closed_with_4404_and_no_error(kind, path, caplog):
    user = await database_sync_to_async(_user)(kind)
    headers = await database_sync_to_async(_headers)(user)
    communicator = WebsocketCommunicator(application, path, headers=headers)

    with caplog.at_level(logging.WARNING):
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        error = await communicator.receive_json_from(timeout=TIMEOUT)
        closed = await communicator.receive_output(timeout=TIMEOUT)
        await communicator.wait(timeout=TIMEOUT)  # the application ends, without an exception

    assert connected
    assert error == {"kind": "error", "error": f"no websocket at {path}"}
    assert closed == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


# --- API tokens: clients that are not browsers ---------------------------------------------------


def _token_of(kind: str) -> str:
    user = _user(kind)
    return str(Token.objects.create(user=user).key)


async def _open_with(
    headers: list[tuple[bytes, bytes]],
    *,
    query: str = "backfill=0",
    subprotocols: list[str] | None = None,
) -> tuple[WebsocketCommunicator, bool, str | None]:
    communicator = WebsocketCommunicator(
        application, f"/ws/events/?{query}", headers=headers, subprotocols=subprotocols
    )
    connected, subprotocol = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected, subprotocol


@pytest.mark.asyncio
@pytest.mark.parametrize("keyword", ["Token", "token"])
async def test_a_client_without_a_browser_signs_in_with_a_token_header(keyword):
    key = await database_sync_to_async(_token_of)("staff who may watch")
    # No Origin: scripts and services send none.
    headers = [(b"authorization", f"{keyword} {key}".encode())]

    communicator, connected, subprotocol = await _open_with(headers)

    assert connected
    assert subprotocol is None
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "backfill"
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_a_client_signs_in_with_the_token_subprotocol_and_only_token_is_echoed():
    key = await database_sync_to_async(_token_of)("staff who may watch")

    communicator, connected, subprotocol = await _open_with([], subprotocols=["token", key])

    assert connected
    assert subprotocol == "token"
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "backfill"
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_the_token_subprotocol_works_from_a_page_of_the_site():
    key = await database_sync_to_async(_token_of)("staff who may watch")
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]

    communicator, connected, subprotocol = await _open_with(headers, subprotocols=["token", key])

    assert (connected, subprotocol) == (True, "token")
    assert (await communicator.receive_json_from(timeout=TIMEOUT))["kind"] == "backfill"
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("not staff", CLOSE_FORBIDDEN),
        ("staff without permission", CLOSE_FORBIDDEN),
        ("unknown token", CLOSE_UNAUTHENTICATED),
        ("inactive user", CLOSE_UNAUTHENTICATED),
    ],
)
@pytest.mark.parametrize("how", ["header", "subprotocol"])
async def test_a_token_gets_the_checks_of_a_session(kind, code, how):
    def token() -> str:
        if kind == "unknown token":
            return "0" * 40
        if kind == "inactive user":
            key = _token_of("staff who may watch")
            Token.objects.get(key=key).user.__class__.objects.filter(auth_token__key=key).update(
                is_active=False
            )
            return key
        return _token_of(kind)

    key = await database_sync_to_async(token)()
    if how == "header":
        communicator, connected, _ = await _open_with([(b"authorization", f"Token {key}".encode())])
    else:
        communicator, connected, _ = await _open_with([], subprotocols=["token", key])

    assert connected
    assert await communicator.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": code,
    }


@pytest.mark.asyncio
async def test_a_bad_token_does_not_fall_back_to_the_session():
    user = await database_sync_to_async(_user)("staff who may watch")
    headers = await database_sync_to_async(_headers)(user)

    communicator, connected, _ = await _open_with(
        [*headers, (b"authorization", b"Token not-a-key")]
    )

    assert connected
    assert await communicator.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": CLOSE_UNAUTHENTICATED,
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["token", "auth_token", "access_token", "key", "Authorization"])
async def test_a_token_in_the_query_string_is_refused(name):
    key = await database_sync_to_async(_token_of)("staff who may watch")
    user = await database_sync_to_async(_user)("staff who may watch")
    # Even for a session that may watch: a key in a URL ends up in logs.
    headers = await database_sync_to_async(_headers)(user)

    communicator, connected, _ = await _open_with(headers, query=f"{name}={key}&backfill=0")

    assert connected
    error = await communicator.receive_json_from(timeout=TIMEOUT)
    assert error["kind"] == "error"
    assert "Authorization" in error["error"]
    assert key not in error["error"]
    assert await communicator.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": CLOSE_UNAUTHENTICATED,
    }


@pytest.mark.asyncio
async def test_without_a_token_a_missing_origin_is_still_refused():
    user = await database_sync_to_async(_user)("staff who may watch")
    headers = [h for h in await database_sync_to_async(_headers)(user) if h[0] != b"origin"]

    _, connected, _ = await _open_with(headers)

    assert not connected


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["header", "subprotocol"])
async def test_a_token_does_not_open_the_door_to_a_foreign_origin(how):
    key = await database_sync_to_async(_token_of)("staff who may watch")
    headers = [(b"origin", b"http://evil.example"), (b"host", b"localhost")]
    if how == "header":
        _, connected, _ = await _open_with([*headers, (b"authorization", f"Token {key}".encode())])
    else:
        _, connected, _ = await _open_with(headers, subprotocols=["token", key])

    assert not connected
