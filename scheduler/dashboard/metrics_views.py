"""`/metrics`: the Prometheus exposition, for staff or for a scraper holding METRICS_TOKEN."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.observability.metrics import metrics_registry
from scheduler.permissions import can_view_dashboard
from scheduler.services import retention_overview

_registry = metrics_registry(history=retention_overview)


def _refused(status: int, message: str) -> HttpResponse:
    response = HttpResponse(f"{message}\n", status=status, content_type="text/plain")
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    token = _bearer_token(request)
    if token is not None:
        # A scraper says who it is with the token; a wrong one is refused even with a session.
        expected = settings.METRICS_TOKEN
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            return _refused(401, "invalid metrics token")
    elif not can_view_dashboard(request.user):
        if request.user.is_authenticated:
            return _refused(403, "staff with the scheduler.view_dashboard permission only")
        return _refused(401, "log in as staff, or send Authorization: Bearer <METRICS_TOKEN>")
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
