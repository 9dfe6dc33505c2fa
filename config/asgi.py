"""ASGI entry point: Django for http, Channels for websockets."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
# Under ASGI every request runs its sync code in a thread of its own, so a persistent
# connection is never reused, only left open: the web process closes them after each request.
# Workers and beat keep theirs (DB_CONN_MAX_AGE).
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

# Django must be set up before anything imports models (consumers, auth middleware).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from scheduler.live import (  # noqa: E402
    NotFoundURLRouter,
    OriginOrTokenValidator,
    TokenAuthMiddleware,
)

# Websockets: the allowed-hosts origin check (a client with an API token may send no Origin),
# the session's user, replaced by an API token's when one is offered, then the routes (a path
# none serves is closed with 4404). See scheduler/live/ws_auth.py.
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginOrTokenValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(NotFoundURLRouter(websocket_urlpatterns)))
        ),
    }
)
