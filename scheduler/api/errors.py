"""Every error of the API is JSON with a 4xx code (503 when Redis or the broker is down).

Shapes: a 400 maps each field to its messages, `{"field": ["message"]}` (the request body as a
whole is the field `body`: malformed JSON, not an object); every other error is
`{"detail": "message"}`. DRF views go through `exception_handler`; what Django answers before
a view runs (no such URL, a crash outside DRF) goes through the `handler*` views, which keep
Django's HTML pages for everything outside `/api/`.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from kombu.exceptions import OperationalError
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from scheduler.services import ScheduleError, ScheduleNotFound

logger = logging.getLogger(__name__)

BODY = "body"
API_PREFIX = "/api/"
# Redis (broker, channel layer) cannot be reached: the request was fine, the service is not.
UNAVAILABLE = (OperationalError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: service errors, parse errors and crashes as JSON."""
    request = context.get("request")
    if request is not None:
        # JSON whatever the view renders otherwise (the schema's YAML, the docs' HTML).
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    if isinstance(exc, ScheduleError):
        set_rollback()
        return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ScheduleNotFound):
        exc = exceptions.NotFound(str(exc))
    if isinstance(exc, exceptions.ParseError):
        set_rollback()
        return Response({BODY: [str(exc.detail)]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read the body (DATA_UPLOAD_MAX_MEMORY_SIZE) when DRF parses it.
        return Response(
            {"detail": f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, UNAVAILABLE):
        logger.warning("API: Redis or the broker is unavailable: %s", exc)
        set_rollback()
        return Response(
            {"detail": f"the broker is unavailable, try again later ({type(exc).__name__})"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        # A bug: logged with its traceback, answered as JSON rather than Django's HTML page.
        logger.error(
            "API: unhandled error in %s %s",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            exc_info=exc,
        )
        set_rollback()
        return Response(
            {"detail": "internal error (logged on the server)"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if response.status_code == status.HTTP_400_BAD_REQUEST and isinstance(response.data, list):
        response.data = {BODY: response.data}
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        # Django's own 400s (a host not allowed, a body too big) say no more than this.
        return JsonResponse({"detail": "bad request"}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "permission denied"}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": f"no such API endpoint: {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse({"detail": "internal error (logged on the server)"}, status=500)
    return defaults.server_error(request)
