"""Backfills over the API: `POST /api/schedules/<name>/backfill/` runs a schedule's times between
two moments now (`scheduler.run_tasks`, as running a task does), `GET /api/backfills/<id>/`
follows its progress, `GET /api/backfills/` lists the latest.

Through the same services as the admin and the CLI: the same checks (a 400 naming `from`, `to`,
`overlap`, `schedule` or `task`), the same audit (source api). `from` and `to` are ISO 8601; one
without an offset is read in the schedule's zone. A dry run answers the count and the runs and
writes nothing.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler import selectors, services
from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    Pages,
    StaffPermission,
    StrictSerializer,
    absolute,
    found,
    paginated,
    validated,
)
from scheduler.models import Backfill, Source
from scheduler.permissions import RUN_TASKS
from scheduler.schedules.policies import OverlapPolicy

RUNS_SHOWN = 100
_TIME_HELP = (
    "ISO 8601 date or time ('2025-01-15', '2025-01-15T09:00:00+00:00'); without an offset, in "
    "the schedule's zone."
)
SCHEDULE_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="the periodic task's name"
)
BACKFILL_ID = OpenApiParameter(
    "backfill_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="a backfill's id"
)


class BackfillIdConverter:
    """Digits, no more than a database integer holds: anything else is a 404 of the resolver."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class BackfillInputSerializer(StrictSerializer):
    to = serializers.CharField(max_length=64, help_text=f"The range's end, included. {_TIME_HELP}")
    overlap = serializers.CharField(
        required=False,
        max_length=20,
        help_text=(
            "What a backfilled run does while another run of the schedule runs: "
            f"{', '.join(OverlapPolicy.values)} (default buffer_all)."
        ),
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Count and list the runs; make none, write nothing."
    )

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # "from" is a keyword of Python: no class attribute can be named so.
        fields = super().get_fields()
        return {
            "from": serializers.CharField(
                max_length=64, help_text=f"The range's start, included. {_TIME_HELP}"
            ),
            **fields,
        }


class BackfillSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    periodic_task_name = serializers.CharField()
    overlap = serializers.CharField()
    status = serializers.ChoiceField(choices=Backfill.Status.choices)
    total = serializers.IntegerField(help_text="The runs of the range.")
    published = serializers.IntegerField(help_text="Runs published so far.")
    existing = serializers.IntegerField(
        help_text="Runs an earlier backfill made already: not published again."
    )
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.URLField(help_text="GET it to follow the progress.")

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Names no class attribute can have: a keyword, and one a Field has already.
        return {
            **super().get_fields(),
            "from": serializers.DateTimeField(),
            "to": serializers.DateTimeField(),
            "source": serializers.CharField(help_text="admin, cli, api, ..."),
        }


def _shown(request: Request, backfill: Backfill) -> dict[str, Any]:
    return {
        **services.backfill_as_dict(backfill),
        "url": absolute(request, "api-backfill-detail", backfill.pk),
    }


class ScheduleBackfillView(APIView):
    permission_classes = [StaffPermission]
    required_permissions = {"post": RUN_TASKS}

    @extend_schema(
        parameters=[SCHEDULE_NAME],
        request=BackfillInputSerializer,
        responses={
            202: BackfillSerializer,
            200: OpenApiTypes.OBJECT,
            400: ERRORS_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
        description=(
            "Run the schedule's times between `from` and `to` (both included) now, at most "
            f"{services.BACKFILL_MAX_RUNS:,}: 202 with the backfill, whose runs are published "
            "in the background. Each run has a task id made of the schedule and its due time, "
            "so a repeat publishes only the runs not made before (counted as `existing`). "
            "With `dry_run`: 200 with the count and the first runs; nothing is written. "
            "Needs `scheduler.run_tasks`."
        ),
    )
    def post(self, request: Request, name: str) -> Response:
        body = validated(BackfillInputSerializer, request.data)
        arguments = {
            "name": name,
            "start": body["from"],
            "end": body["to"],
            "overlap": body.get("overlap"),
        }
        if body["dry_run"]:
            plan = services.backfill_plan(**arguments)
            return Response({**plan.as_dict(shown=RUNS_SHOWN), "dry_run": True})
        backfill = services.backfill_start(**arguments, actor=request.user, source=Source.API)
        return Response(_shown(request, backfill), status=status.HTTP_202_ACCEPTED)


class BackfillDetailView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        parameters=[BACKFILL_ID],
        responses={200: BackfillSerializer, 404: NOT_FOUND_RESPONSE},
        description="A backfill and its progress (`published` + `existing` of `total`).",
    )
    def get(self, request: Request, backfill_id: int) -> Response:
        backfill = found(
            selectors.backfill_by_id(backfill_id), f"no backfill with id {backfill_id}"
        )
        return Response(_shown(request, backfill))


class BackfillQuerySerializer(StrictSerializer):
    schedule = serializers.CharField(
        required=False, max_length=255, help_text="only the backfills of this periodic task"
    )
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=Pages.max_page_size)


class BackfillListView(APIView):
    permission_classes = [StaffPermission]
    pagination_class = Pages

    @extend_schema(
        parameters=[BackfillQuerySerializer],
        responses={200: BackfillSerializer(many=True), 400: ERRORS_RESPONSE},
        description="The latest backfills, newest first, with their progress.",
    )
    def get(self, request: Request) -> Response:
        query = validated(BackfillQuerySerializer, request.query_params)
        rows = selectors.backfills_listed(periodic_task_name=query.get("schedule"))
        return paginated(
            request, rows, lambda page: [_shown(request, row) for row in page], view=self
        )
