"""The API of incidents (`/api/incidents/`): the list (open ones first, then the latest; searched;
paged by cursor, never counted), one incident with its deliveries, and acknowledging, silencing
and resolving it.

Reads need `scheduler.view_dashboard`, as the dashboard's panel shows the same; what is done to
an incident needs `scheduler.manage_alerts`. An incident already resolved is a 409.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import URLPattern, path, re_path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from scheduler import selectors
from scheduler.api.alerts import DeliverySerializer, found_or_404
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    StaffPermission,
    StrictSerializer,
    absolute,
    found,
    validated,
)
from scheduler.models import Incident, Source
from scheduler.permissions import MANAGE_ALERTS, VIEW_DASHBOARD
from scheduler.schedules.parsing import zone_named
from scheduler.selectors.alerts import (
    ALL,
    CURSOR_MAX_LENGTH,
    INCIDENT_STATUSES,
    INCIDENTS_PAGE_SIZE,
    SEARCH_MAX_LENGTH,
    IncidentCursor,
)
from scheduler.services import ScheduleError
from scheduler.services.alerts import DURATION_MAX, NAME_MAX, incident_acknowledge, incident_silence
from scheduler.services.incidents import incident_resolve

# A silence lasts at most this long (seconds), as a rule's durations do.
SILENCE_MAX = DURATION_MAX
INCIDENTS_PAGE_MAX = 200

INCIDENT_ID = OpenApiParameter("incident_id", OpenApiTypes.INT, OpenApiParameter.PATH)
CONFLICT_RESPONSE = OpenApiResponse(description='{"detail": "incident N is already resolved"}')


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the request conflicts with the state of the resource"
    default_code = "conflict"


class IncidentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    title = serializers.CharField()
    rule = serializers.CharField(source="rule.name")
    trigger = serializers.CharField(source="rule.trigger")
    subject = serializers.CharField(help_text="'schedule:<name>', 'task:<name>', 'queue:<name>'")
    status = serializers.SerializerMethodField(help_text="open or resolved")
    opened_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    last_match_at = serializers.DateTimeField()
    match_count = serializers.IntegerField()
    notified_at = serializers.DateTimeField(allow_null=True)
    acknowledged_by = serializers.SerializerMethodField(help_text="a username, or null")
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    acknowledge_note = serializers.CharField()
    silenced_until = serializers.DateTimeField(allow_null=True)
    details = serializers.JSONField(help_text="the last match's facts: task id, error, ...")
    object = serializers.SerializerMethodField(help_text='{"type", "id"} of a domain object')
    url = serializers.SerializerMethodField()

    def get_status(self, incident: Incident) -> str:
        return "open" if incident.is_open else "resolved"

    def get_acknowledged_by(self, incident: Incident) -> str | None:
        user = incident.acknowledged_by
        return user.get_username() if user is not None else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_object(self, incident: Incident) -> dict[str, str] | None:
        if not incident.object_type:
            return None
        return {"type": incident.object_type, "id": incident.object_id}

    def get_url(self, incident: Incident) -> str:
        return absolute(self.context.get("request"), "api-incident", incident.pk)


class IncidentDetailSerializer(IncidentSerializer):
    deliveries = serializers.SerializerMethodField(
        help_text="its latest notifications, newest first"
    )

    @extend_schema_field(DeliverySerializer(many=True))
    def get_deliveries(self, incident: Incident) -> list[dict[str, Any]]:
        return list(DeliverySerializer(selectors.incident_deliveries(incident), many=True).data)


class IncidentQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(
        choices=INCIDENT_STATUSES,
        required=False,
        allow_blank=True,
        help_text="open, resolved or all (the default: open ones first, then the latest)",
    )
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=SEARCH_MAX_LENGTH,
        help_text="words in the title, the subject or the rule's name",
    )
    rule = serializers.CharField(
        required=False, allow_blank=True, max_length=NAME_MAX, help_text="a rule's name"
    )
    cursor = serializers.CharField(
        required=False, max_length=CURSOR_MAX_LENGTH, help_text="from the previous page's next"
    )
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=INCIDENTS_PAGE_MAX, default=INCIDENTS_PAGE_SIZE
    )

    def validate_cursor(self, value: str) -> IncidentCursor:
        try:
            return IncidentCursor.parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class IncidentPageSerializer(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True, help_text="the next page; null on the last")
    open_count = serializers.IntegerField(help_text="open incidents in all (not only these)")
    results = IncidentSerializer(many=True)


class IncidentListView(APIView):
    """Incidents, a page at a time (by cursor: the list is never counted)."""

    permission_classes = [StaffPermission]
    required_permissions = {"get": VIEW_DASHBOARD}

    @extend_schema(
        operation_id="incidents_list",
        parameters=[IncidentQuerySerializer],
        responses={200: IncidentPageSerializer, 400: ERRORS_RESPONSE},
    )
    def get(self, request: Request) -> Response:
        query = validated(IncidentQuerySerializer, request.query_params)
        page = selectors.incidents_page(
            status=query.get("status") or ALL,
            q=query.get("q", ""),
            rule=query.get("rule", ""),
            after=query.get("cursor"),
            limit=query["page_size"],
        )
        following = None
        if page.next is not None:
            following = replace_query_param(request.build_absolute_uri(), "cursor", page.next.token)
        context = {"request": request}
        return Response(
            {
                "next": following,
                "open_count": selectors.incidents_open_count(),
                "results": IncidentSerializer(page.incidents, many=True, context=context).data,
            }
        )


def _incident(incident_id: str) -> Incident:
    return found(selectors.incident_by_id(int(incident_id)), f"no incident {incident_id}")


def _open_incident(incident_id: str) -> Incident:
    incident = _incident(incident_id)
    if not incident.is_open:
        raise Conflict(f"incident {incident.pk} is already resolved")
    return incident


@contextmanager
def _still_open() -> Iterator[None]:
    """Resolved between our read and the service's (its refusal names the incident): a 409."""
    try:
        yield
    except ScheduleError as exc:
        if "incident" not in exc.errors:
            raise
        raise Conflict(" ".join(exc.errors["incident"])) from exc


def _incident_answer(request: Request, incident_id: int | str) -> Response:
    incident = _incident(str(incident_id))
    return Response(IncidentDetailSerializer(incident, context={"request": request}).data)


class IncidentDetailView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"get": VIEW_DASHBOARD}

    @extend_schema(
        parameters=[INCIDENT_ID],
        responses={200: IncidentDetailSerializer, 404: NOT_FOUND_RESPONSE},
    )
    def get(self, request: Request, incident_id: str) -> Response:
        return _incident_answer(request, incident_id)


class AcknowledgeSerializer(StrictSerializer):
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", help_text="who is on it"
    )


_ACTION_RESPONSES = {
    200: IncidentDetailSerializer,
    400: ERRORS_RESPONSE,
    404: NOT_FOUND_RESPONSE,
    409: CONFLICT_RESPONSE,
}


class IncidentAcknowledgeView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": MANAGE_ALERTS}

    @extend_schema(
        parameters=[INCIDENT_ID],
        request=AcknowledgeSerializer,
        responses=_ACTION_RESPONSES,
        description=(
            "Somebody is on it: no more repeats (its recovery is still told). 409 once "
            "resolved. Needs `scheduler.manage_alerts`."
        ),
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = _open_incident(incident_id)
        body = validated(AcknowledgeSerializer, request.data)
        with found_or_404(), _still_open():
            incident_acknowledge(
                incident_id=incident.pk, actor=request.user, note=body["note"], source=Source.API
            )
        return _incident_answer(request, incident.pk)


class SilenceSerializer(StrictSerializer):
    """`until` (a time, or null to lift the silence) or `for` (seconds from now)."""

    until = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="ISO 8601 date-time (naive: the server's TIME_ZONE); null lifts the silence",
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # "for" is a Python keyword: it cannot be a class attribute.
        fields["for"] = serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=SILENCE_MAX,
            help_text=f"seconds from now (at most {SILENCE_MAX})",
        )
        return fields

    def validate_until(self, value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise serializers.ValidationError(
                f"{value[:100]!r} is not an ISO 8601 date-time (e.g. 2030-01-15T09:00:00+00:00)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone_named(settings.TIME_ZONE))
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise serializers.ValidationError(
                f"{value[:100]!r} is outside the calendar once in UTC"
            ) from None
        if moment > timezone.now() + timedelta(seconds=SILENCE_MAX):
            raise serializers.ValidationError(f"at most {SILENCE_MAX} seconds from now")
        return moment

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if ("until" in data) == ("for" in data):
            raise serializers.ValidationError(
                'give "until" (a date-time, or null to lift the silence) or "for" (seconds), '
                "one of them"
            )
        return data


class IncidentSilenceView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": MANAGE_ALERTS}

    @extend_schema(
        parameters=[INCIDENT_ID],
        request=SilenceSerializer,
        responses=_ACTION_RESPONSES,
        description=(
            "No notification of it until then ({'until': null} lifts the silence). 409 once "
            "resolved. Needs `scheduler.manage_alerts`."
        ),
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = _open_incident(incident_id)
        body = validated(SilenceSerializer, request.data)
        until = body.get("until")
        if "for" in body:
            until = timezone.now() + timedelta(seconds=body["for"])
        with found_or_404(), _still_open():
            incident_silence(
                incident_id=incident.pk, until=until, actor=request.user, source=Source.API
            )
        return _incident_answer(request, incident.pk)


class IncidentResolveView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": MANAGE_ALERTS}

    @extend_schema(
        parameters=[INCIDENT_ID],
        request=None,
        responses=_ACTION_RESPONSES,
        description=(
            "Close it by hand: its recovery is told as any other. 409 once resolved. Needs "
            "`scheduler.manage_alerts`."
        ),
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = _open_incident(incident_id)
        with found_or_404():
            incident_resolve(incident_id=incident.pk, actor=request.user, source=Source.API)
        return _incident_answer(request, incident.pk)


# Digits that a database integer holds; anything else is a 404.
INCIDENT = r"(?P<incident_id>[0-9]{1,18})"

urlpatterns: list[URLPattern] = [
    path("incidents/", IncidentListView.as_view(), name="api-incidents"),
    re_path(rf"^incidents/{INCIDENT}/$", IncidentDetailView.as_view(), name="api-incident"),
    re_path(
        rf"^incidents/{INCIDENT}/acknowledge/$",
        IncidentAcknowledgeView.as_view(),
        name="api-incident-acknowledge",
    ),
    re_path(
        rf"^incidents/{INCIDENT}/silence/$",
        IncidentSilenceView.as_view(),
        name="api-incident-silence",
    ),
    re_path(
        rf"^incidents/{INCIDENT}/resolve/$",
        IncidentResolveView.as_view(),
        name="api-incident-resolve",
    ),
]
