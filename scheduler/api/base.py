"""The small public base every app's API is built on: the scheduler's, the agents' and the
tournaments' views import it (through `scheduler.api`), so that they allow, page, refuse and
answer alike.

Staff only, with a permission per write (`StaffPermission`); input that names a field nobody
has is an error (`StrictSerializer`); pages of `?page=` and `?page_size=` (`Pages`); a 400 maps
each field to its messages and a 404 says what was not found; a queued task is answered 202 with
the URL that follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from scheduler.models import Source
from scheduler.permissions import is_staff

T = TypeVar("T")

# The error answers, as the schema describes them (scheduler/api/errors.py gives the shapes).
ERRORS_RESPONSE = OpenApiResponse(
    description='Invalid input: {"field": ["message", ...]} (the body as a whole is "body")'
)
NOT_FOUND_RESPONSE = OpenApiResponse(description='{"detail": "message"}')


# --- Who may call --------------------------------------------------------------------------------


class StaffPermission(BasePermission):
    """Staff only; then the permission `view.required_permissions` names for the call.

    `required_permissions` maps a viewset action ("create", "run") or, on a plain view, an
    HTTP method in lower case ("post") to a permission name; calls it does not name need none.
    The names are those of `scheduler/permissions.py`, so the API allows exactly what the
    dashboard and the admin allow. Anonymous callers get 401, others 403.
    """

    message = "staff only: this account is not a member of staff"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not is_staff(user):
            return False
        required: Mapping[str, str] = getattr(view, "required_permissions", {})
        key = getattr(view, "action", None) or (request.method or "").lower()
        permission = required.get(key)
        if permission is None or user.has_perm(permission):
            return True
        # A fresh instance per request (DRF's get_permissions), so the message is this call's.
        self.message = f"permission required: {permission}"
        return False


# The dashboard's buttons call the API with this header, so that the audit trail says where the
# click was made (scheduler/static/scheduler/dashboard/actions.js).
SOURCE_HEADER = "X-Scheduler-Source"


def request_source(request: Request) -> str:
    """Source.DASHBOARD for a request of the dashboard's own pages (signed in by its session
    and saying so in SOURCE_HEADER), else Source.API."""
    said = request.headers.get(SOURCE_HEADER, "").strip().lower()
    by_session = isinstance(
        getattr(request, "successful_authenticator", None), SessionAuthentication
    )
    return Source.DASHBOARD if said == Source.DASHBOARD and by_session else Source.API


# --- Input ---------------------------------------------------------------------------------------


class StrictSerializer(serializers.Serializer[Any]):
    """Rejects fields it does not know: a misspelt field is an error, not silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["is not a field of this request"] for name in unknown}
                )
        return super().to_internal_value(data)


def validated(
    serializer_class: type[serializers.Serializer[Any]], data: Any, *, partial: bool = False
) -> dict[str, Any]:
    """`data` (a body or the query string) read by `serializer_class`; a 400 when it is wrong."""
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def field_errors(
    errors: Mapping[str, str], rename: Mapping[str, str] | None = None
) -> serializers.ValidationError:
    """A service's refusal by field ({"field": "message"}) as the 400 every API error has,
    {"field": ["message"]}; `rename` gives the services' fields the request's names."""
    names = rename or {}
    return serializers.ValidationError(
        {names.get(field, field): [message] for field, message in errors.items()}
    )


def found(value: T | None, detail: str) -> T:
    """`value` read by a selector, or a 404 saying `detail` when there is none."""
    if value is None:
        raise NotFound(detail)
    return value


# --- Answers -------------------------------------------------------------------------------------


class Pages(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def paginated(request: Request, rows: Any, shape: Callable[[Any], Any], *, view: Any) -> Response:
    """The page of `rows` the request asks for, in the view's `pagination_class` (`Pages` by
    default), each row shaped by `shape` (given the page's rows, it returns their JSON)."""
    pages: type[BasePagination] = getattr(view, "pagination_class", None) or Pages
    paginator = pages()
    page = paginator.paginate_queryset(rows, request, view=view)
    return paginator.get_paginated_response(shape(page if page is not None else []))


def absolute(request: Request | None, name: str, *args: Any) -> str:
    path = reverse(name, args=args)
    return request.build_absolute_uri(path) if request is not None else path


class TaskQueuedSerializer(serializers.Serializer[Any]):
    task_id = serializers.CharField()
    status = serializers.CharField(default="queued")
    url = serializers.URLField(help_text="GET it to follow the task (add ?wait=S to wait)")


def task_queued(request: Request, task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": "queued",
        "url": absolute(request, "api-task-detail", task_id),
    }


def queued_response(request: Request, task_id: str) -> Response:
    """202: the task is queued; its URL follows it (`TaskQueuedSerializer`)."""
    return Response(task_queued(request, task_id), status=status.HTTP_202_ACCEPTED)
