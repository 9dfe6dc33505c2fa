"""`/api/dead-letters/`: runs that failed their last retry. List and read them (staff), requeue
one as a new run or discard it (`scheduler.run_tasks`), through the same services, and so the
same checks and audit, as the admin, the dashboard and the CLI.

Answers: an unknown id is a 404, a letter requeued or discarded already a 409, a run the catalog
refuses now (a task removed, arguments no longer valid) a 400 naming `task` or `params`; all
JSON. Arguments are shown masked.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import selectors, services
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    StaffPermission,
    absolute,
    found,
    paginated,
    task_queued,
    validated,
)
from scheduler.api.views import HistoryPages
from scheduler.models import DeadLetter, Source
from scheduler.permissions import RUN_TASKS

DEAD_LETTER_ID = OpenApiParameter(
    "dead_letter_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="a dead letter's id"
)
CONFLICT_RESPONSE = OpenApiResponse(
    description='{"detail": "dead letter 7 was requeued already"}: it is no longer open'
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the dead letter is no longer open"
    default_code = "conflict"


class DeadLetterIdConverter:
    """Digits, no more than a database integer holds: anything else is a 404 of the resolver."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


# --- Shapes --------------------------------------------------------------------------------------


class DeadLetterQuerySerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(
        choices=selectors.DEAD_LETTER_STATUSES,
        default=DeadLetter.Status.OPEN.value,
        help_text="open (default), requeued, discarded, or all",
    )
    task = serializers.CharField(required=False, max_length=255, help_text="a task name")
    q = serializers.CharField(
        required=False,
        max_length=255,
        help_text="the start of a task id, or part of a task or periodic task name",
    )


class DeadLetterObjectSerializer(serializers.Serializer[Any]):
    type = serializers.CharField()
    id = serializers.CharField()


class DeadLetterSerializer(serializers.Serializer[Any]):
    """A dead letter as `selectors.dead_letter_shown` gives it (arguments masked)."""

    id = serializers.IntegerField()
    task_id = serializers.CharField()
    task_name = serializers.CharField()
    periodic_task_name = serializers.CharField(help_text="empty when no schedule sent it")
    kwargs = serializers.JSONField(help_text="as the run was called, secret values masked")
    error = serializers.CharField()
    error_summary = serializers.CharField()
    attempts = serializers.IntegerField(help_text="runs, the retries included")
    queue = serializers.CharField()
    status = serializers.ChoiceField(choices=DeadLetter.Status.values)
    failed_at = serializers.DateTimeField()
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolved_by = serializers.CharField(allow_null=True)
    requeued_as = serializers.CharField(help_text="the new run's task id, once requeued")
    object = DeadLetterObjectSerializer(allow_null=True)
    requeueable = serializers.BooleanField(help_text="open, and its task in the catalog now")
    url = serializers.URLField()


class DeadLetterRequeuedSerializer(serializers.Serializer[Any]):
    task_id = serializers.CharField(help_text="the new run's task id")
    status = serializers.CharField(default="queued")
    url = serializers.URLField(help_text="GET it to follow the new run (add ?wait=S to wait)")
    dead_letter_id = serializers.IntegerField()


def _shown(request: Request, rows: Any) -> list[dict[str, Any]]:
    return [
        {**row, "url": absolute(request, "api-dead-letter-detail", row["id"])}
        for row in selectors.dead_letters_shown(rows)
    ]


def _letter(request: Request, dead_letter_id: int) -> Response:
    letter = found(
        selectors.dead_letter_by_id(dead_letter_id), f"no dead letter with id {dead_letter_id}"
    )
    return Response(DeadLetterSerializer(_shown(request, [letter])[0]).data)


# --- Views ---------------------------------------------------------------------------------------


class DeadLetterListView(APIView):
    """Dead letters, newest first."""

    permission_classes = [StaffPermission]
    pagination_class = HistoryPages

    @extend_schema(
        parameters=[DeadLetterQuerySerializer],
        responses={200: DeadLetterSerializer(many=True), 400: ERRORS_RESPONSE},
        description="Runs that failed their last retry, newest first; open ones by default.",
    )
    def get(self, request: Request) -> Response:
        query = validated(DeadLetterQuerySerializer, request.query_params)
        rows = selectors.dead_letters_listed(
            status=query["status"], task=query.get("task"), text=query.get("q")
        )
        return paginated(request, rows, lambda page: _shown(request, page), view=self)


class DeadLetterDetailView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        parameters=[DEAD_LETTER_ID],
        responses={200: DeadLetterSerializer, 404: NOT_FOUND_RESPONSE},
    )
    def get(self, request: Request, dead_letter_id: int) -> Response:
        return _letter(request, dead_letter_id)


class DeadLetterRequeueView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[DEAD_LETTER_ID],
        request=None,
        responses={
            202: DeadLetterRequeuedSerializer,
            400: ERRORS_RESPONSE,
            404: NOT_FOUND_RESPONSE,
            409: CONFLICT_RESPONSE,
        },
        description=(
            "Queue the run again with the same arguments, as a new task on its queue, after "
            "the catalog checked them again (400 naming `task` or `params` when it refuses "
            "them now). 409 when the letter was requeued or discarded already. Needs "
            "`scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        try:
            task_id = services.dead_letter_requeue(
                dead_letter_id=dead_letter_id, actor=request.user, source=Source.API
            )
        except services.DeadLetterNotFound as exc:
            raise NotFound(str(exc)) from exc
        except services.DeadLetterResolved as exc:
            raise Conflict(str(exc)) from exc
        body = {**task_queued(request, task_id), "dead_letter_id": dead_letter_id}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class DeadLetterDiscardView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[DEAD_LETTER_ID],
        request=None,
        responses={200: DeadLetterSerializer, 404: NOT_FOUND_RESPONSE, 409: CONFLICT_RESPONSE},
        description=(
            "Close the letter without running it again; the letter as it is now. 409 when it "
            "was requeued or discarded already. Needs `scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        try:
            services.dead_letter_discard(
                dead_letter_id=dead_letter_id, actor=request.user, source=Source.API
            )
        except services.DeadLetterNotFound as exc:
            raise NotFound(str(exc)) from exc
        except services.DeadLetterResolved as exc:
            raise Conflict(str(exc)) from exc
        return _letter(request, dead_letter_id)
