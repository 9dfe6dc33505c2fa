"""`POST /api/schedules/preview/`: what a schedule would do, before it is saved (a dry run).

The same reading as saving it (scheduler/schedules/parsing.py) and the same DST warnings as the
admin's preview and `scheduler parse`: its next runs in its zone and in UTC. Nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler.api.base import ERRORS_RESPONSE, StaffPermission, StrictSerializer, validated
from scheduler.schedules.parsing import ScheduleParseError, parse_schedule, zone_named
from scheduler.schedules.preview import parsed_warnings
from scheduler.services import DESCRIPTION_MAX_LENGTH

PREVIEW_MAX_RUNS = 100


class SchedulePreviewInput(StrictSerializer):
    schedule = serializers.CharField(
        max_length=DESCRIPTION_MAX_LENGTH,
        help_text='A phrase or a cron line: "every weekday at 9:30", "30 2 * * *".',
    )
    timezone = serializers.CharField(max_length=63, default="UTC")
    count = serializers.IntegerField(min_value=1, max_value=PREVIEW_MAX_RUNS, default=10)
    now = serializers.DateTimeField(
        required=False, help_text="Preview from this moment (default: now)."
    )


class PreviewRunSerializer(serializers.Serializer[Any]):
    at = serializers.CharField(help_text="In the schedule's zone, ISO 8601 with its offset.")
    utc = serializers.CharField()


class SchedulePreviewSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    description = serializers.CharField()
    timezone = serializers.CharField()
    next_runs = PreviewRunSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class SchedulePreviewView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        request=SchedulePreviewInput,
        responses={200: SchedulePreviewSerializer, 400: ERRORS_RESPONSE},
        description=(
            "Read a schedule as saving it would, and list its next runs (in its zone and in "
            "UTC) with the DST warnings about them; nothing is saved. 400 names what cannot be "
            "read (a cron line that can never run, an unknown zone)."
        ),
    )
    def post(self, request: Request) -> Response:
        body = validated(SchedulePreviewInput, request.data)
        now = body.get("now")
        try:
            zone_named(body["timezone"])
        except ScheduleParseError as exc:
            raise serializers.ValidationError({"timezone": [str(exc)]}) from None
        try:
            parsed = parse_schedule(body["schedule"], tz=body["timezone"], now=now)
        except ScheduleParseError as exc:
            raise serializers.ValidationError({"schedule": [str(exc)]}) from None
        moment: datetime = now or timezone.now()
        runs = parsed.next_runs(body["count"], now=moment)
        return Response(
            {
                "kind": parsed.kind,
                "description": parsed.description,
                "timezone": parsed.timezone,
                "next_runs": [
                    {"at": run.isoformat(), "utc": run.astimezone(UTC).isoformat()} for run in runs
                ],
                "warnings": parsed_warnings(parsed, now=moment, runs=runs),
            }
        )
