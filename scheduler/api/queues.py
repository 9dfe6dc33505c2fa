"""`/api/queues/`: our queues with their depth and whether staff paused them (staff); pause and
resume consuming one on every worker, and purge its waiting messages (`scheduler.control_workers`),
through the same services, and so the same checks and audit, as the dashboard and the CLI.

Answers: a queue that is not ours is a 404 naming ours; a purge without `{"confirm": "<the
queue's name>"}` a 400 naming `confirm`, with nothing removed; all JSON.
"""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import selectors, services
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    StaffPermission,
    StrictSerializer,
    request_source,
    validated,
)
from scheduler.permissions import CONTROL_WORKERS

QUEUE_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="a queue's name (GET /api/queues/)"
)


# --- Shapes --------------------------------------------------------------------------------------


class QueueSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    purpose = serializers.CharField()
    depth = serializers.IntegerField(help_text="messages waiting on the broker")
    paused = serializers.BooleanField(help_text="no worker consumes it until it is resumed")
    paused_at = serializers.DateTimeField(allow_null=True)
    paused_by = serializers.CharField(allow_null=True, help_text="a user, or a command line's")
    note = serializers.CharField(allow_null=True)
    workers = serializers.ListField(
        child=serializers.CharField(), help_text="live workers started to consume it"
    )


class QueueControlledSerializer(QueueSerializer):
    changed = serializers.BooleanField(help_text="false: it was paused (or not) already")
    answered = serializers.ListField(
        child=serializers.CharField(), help_text="the workers that confirmed the change"
    )


class QueuePauseSerializer(StrictSerializer):
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=services.QUEUE_NOTE_MAX_LENGTH,
        help_text="why (shown with the pause)",
    )


class QueuePurgeSerializer(StrictSerializer):
    confirm = serializers.CharField(
        required=True, help_text="the queue's name, typed again: the purge cannot be undone"
    )


class QueuePurgedSerializer(serializers.Serializer[Any]):
    queue = serializers.CharField()
    purged = serializers.IntegerField(help_text="messages removed")


# --- Views ---------------------------------------------------------------------------------------


def _known(name: str) -> str:
    try:
        return services.queue_check(name)
    except services.QueueNotFound as exc:
        raise NotFound(str(exc)) from exc


def _queue(name: str) -> dict[str, Any]:
    return next(row for row in selectors.queues_listed() if row["name"] == name)


def _controlled(control: services.QueueControl) -> Response:
    return Response(
        QueueControlledSerializer(
            {**_queue(control.queue), "changed": control.changed, "answered": control.workers}
        ).data
    )


class QueueListView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        responses={200: QueueSerializer(many=True)},
        description="Every queue, with its depth, its pause and the live workers started for it.",
    )
    def get(self, request: Request) -> Response:
        return Response(QueueSerializer(selectors.queues_listed(), many=True).data)


class QueuePauseView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CONTROL_WORKERS}

    @extend_schema(
        parameters=[QUEUE_NAME],
        request=QueuePauseSerializer,
        responses={200: QueueControlledSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            "Stop consuming the queue on every worker, and on every worker that starts later, "
            "until it is resumed; its messages wait (those a worker holds already run). Needs "
            "`scheduler.control_workers`."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        body = validated(QueuePauseSerializer, request.data)
        control = services.queue_pause(
            queue=_known(name),
            note=body["note"],
            actor=request.user,
            source=request_source(request),
        )
        return _controlled(control)


class QueueResumeView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CONTROL_WORKERS}

    @extend_schema(
        parameters=[QUEUE_NAME],
        request=None,
        responses={200: QueueControlledSerializer, 404: NOT_FOUND_RESPONSE},
        description=(
            "Consume the queue again, on the workers started for it. Needs "
            "`scheduler.control_workers`."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        control = services.queue_resume(
            queue=_known(name), actor=request.user, source=request_source(request)
        )
        return _controlled(control)


class QueuePurgeView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": CONTROL_WORKERS}

    @extend_schema(
        parameters=[QUEUE_NAME],
        request=QueuePurgeSerializer,
        responses={200: QueuePurgedSerializer, 400: ERRORS_RESPONSE, 404: NOT_FOUND_RESPONSE},
        description=(
            'Remove every message waiting in the queue; `{"confirm": "<the queue\'s name>"}` '
            "is required (400 otherwise, nothing removed). The count removed is answered. "
            "Needs `scheduler.control_workers`."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        queue = _known(name)
        body = validated(QueuePurgeSerializer, request.data)
        purged = services.queue_purge(
            queue=queue, confirm=body["confirm"], actor=request.user, source=request_source(request)
        )
        return Response({"queue": queue, "purged": purged})


urlpatterns: list[URLPattern] = [
    path("queues/", QueueListView.as_view(), name="api-queues"),
    path("queues/<str:name>/pause/", QueuePauseView.as_view(), name="api-queue-pause"),
    path("queues/<str:name>/resume/", QueueResumeView.as_view(), name="api-queue-resume"),
    path("queues/<str:name>/purge/", QueuePurgeView.as_view(), name="api-queue-purge"),
]
