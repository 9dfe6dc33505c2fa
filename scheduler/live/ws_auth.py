"""The websocket stack around the routes: who is calling, and an answer for a path nobody serves.

Browsers sign in with the admin session (channels' `AuthMiddlewareStack`). Clients that are not
browsers (scripts, other services) send the REST API's token instead, one of:

- the header `Authorization: Token <key>`, as the API takes it;
- the subprotocols `token, <key>` (`Sec-WebSocket-Protocol`), for clients that cannot set
  headers; the connection is accepted with the subprotocol `token`, never the key.

A token found is checked as the API checks it (DRF's `TokenAuthentication`: a known key of an
active user) and then its user gets exactly the checks of a session user; a bad token makes the
caller anonymous, never the session's user. A token in the query string is refused (4401 with
an error naming the header): URLs end up in access logs.

Origins: a browser always sends `Origin`, and a foreign one is refused as before. A request with
no `Origin` is not a browser's; it is let through when it carries a token (which is then its
only credential), and refused otherwise, as channels' origin check does.

A path no route serves is accepted and closed with 4404 (and an error message) rather than left
to channels' `ValueError`, which daphne answers with an HTTP 500 and a logged traceback.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
TOKEN_SUBPROTOCOL = "token"  # noqa: S105 (a subprotocol name, not a secret)
# `Authorization: Token <key>`, as the API's TokenAuthentication takes it.
TOKEN_KEYWORD = TokenAuthentication.keyword.lower()
# Query-string keys that look like a credential: refused, never read.
QUERY_CREDENTIALS = frozenset(
    {"token", "auth_token", "access_token", "api_key", "apikey", "key", "authorization"}
)
URL_CREDENTIAL_REFUSED = (
    "an API token in the URL is refused (URLs end up in logs): send the header "
    "`Authorization: Token <key>` or the subprotocols `token, <key>`"
)


async def close_with(
    send: Send, receive: Receive, *, code: int, error: str, subprotocol: str | None = None
) -> None:
    """Accept the handshake, send `{"kind": "error", ...}` and close with `code`.

    Accepted first: a close before accept is an HTTP 403 that loses the application's code.
    """
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    await send({"type": "websocket.send", "text": json.dumps({"kind": "error", "error": error})})
    await send({"type": "websocket.close", "code": code})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin1")
    return None


def offered_token(scope: Scope) -> str | None:
    """The API token the handshake offers ("" for a malformed offer), or None for none."""
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        keyword, _, key = authorization.strip().partition(" ")
        if keyword.lower() == TOKEN_KEYWORD:
            return key.strip()
    subprotocols = list(scope.get("subprotocols") or ())
    if TOKEN_SUBPROTOCOL in subprotocols:
        index = subprotocols.index(TOKEN_SUBPROTOCOL)
        return subprotocols[index + 1].strip() if index + 1 < len(subprotocols) else ""
    return None


def token_in_query(scope: Scope) -> bool:
    query = bytes(scope.get("query_string", b"")).decode("latin1")
    return any(key.lower() in QUERY_CREDENTIALS for key, _ in parse_qsl(query))


@database_sync_to_async
def user_of_token(key: str) -> Any:
    """The active user owning `key`, as the REST API finds it, or an anonymous user."""
    if not key:
        return AnonymousUser()
    try:
        user, _ = TokenAuthentication().authenticate_credentials(key)
    except AuthenticationFailed:
        return AnonymousUser()
    return user


class TokenAuthMiddleware:
    """Inside `AuthMiddlewareStack`: a token offered replaces the session's user (see above)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        key = offered_token(scope)
        offers_subprotocol = TOKEN_SUBPROTOCOL in (scope.get("subprotocols") or ())
        if token_in_query(scope):
            subprotocol = TOKEN_SUBPROTOCOL if offers_subprotocol else None
            await close_with(
                send,
                receive,
                code=CLOSE_UNAUTHENTICATED,
                error=URL_CREDENTIAL_REFUSED,
                subprotocol=subprotocol,
            )
            return
        if key is not None:
            scope["user"] = await user_of_token(key)
        if offers_subprotocol:
            # Nothing after this sees the key, so nothing can echo or log it.
            scope["subprotocols"] = [TOKEN_SUBPROTOCOL]
        await self.inner(scope, receive, send)


class OriginOrTokenValidator:
    """channels' allowed-hosts origin check, except that a tokened request may omit `Origin`."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.checked = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _header(scope, b"origin") is None and offered_token(scope) is not None:
            await self.inner(scope, receive, send)
            return
        await self.checked(scope, receive, send)


def _resolves(routes: list[Any], path: str) -> bool:
    for route in routes:
        match = route.pattern.match(path)
        if not match:
            continue
        callback = route.callback
        if isinstance(callback, URLRouter):
            if _resolves(callback.routes, match[0]):
                return True
            continue
        return True
    return False


class NotFoundURLRouter(URLRouter):
    """channels' URLRouter, with 4404 rather than a `ValueError` for a path no route serves."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "path_remaining" not in scope and not self._serves(scope):
            offered = TOKEN_SUBPROTOCOL in (scope.get("subprotocols") or ())
            await close_with(
                send,
                receive,
                code=CLOSE_NOT_FOUND,
                error=f"no websocket at {scope.get('path', '')}",
                subprotocol=TOKEN_SUBPROTOCOL if offered else None,
            )
            return
        await super().__call__(scope, receive, send)

    def _serves(self, scope: Scope) -> bool:
        """Whether a route matches, as URLRouter's own loop would find one (outermost router)."""
        path = str(scope.get("path", ""))
        root_path = str(scope.get("root_path", ""))
        if root_path and not path.startswith(root_path):
            return False
        return _resolves(self.routes, path[len(root_path) :].lstrip("/"))
