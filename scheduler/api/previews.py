"""`POST /api/schedules/preview/`: what a schedule and its policies would do, before they are
saved (a dry run).

The values are read as saving them would read them (`scheduler.services.schedule_dry_run`: the
schedule, the policies and the task), and the preview is the admin form's
(`scheduler.schedules.preview.schedule_preview`): its next runs in its zone and in UTC, cut at the
end time and after max runs, jitter included; the DST warnings; the policies in words; why the
list stops early. Nothing is written.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler.api.base import ERRORS_RESPONSE, StaffPermission, StrictSerializer, validated
from scheduler.api.serializers import CountField, MomentField, SecondsField
from scheduler.schedules.policies import CatchUp, MisfirePolicy, OverlapPolicy
from scheduler.services import DESCRIPTION_MAX_LENGTH, schedule_dry_run

PREVIEW_MAX_RUNS = 100


class SchedulePreviewInput(StrictSerializer):
    """A schedule and the policies to preview; the values are checked by the services, with
    the messages creating the schedule gives."""

    schedule = serializers.CharField(
        max_length=DESCRIPTION_MAX_LENGTH,
        help_text='A phrase or a cron line: "every weekday at 9:30", "30 2 * * *".',
    )
    timezone = serializers.CharField(max_length=63, default="UTC")
    count = serializers.IntegerField(min_value=1, max_value=PREVIEW_MAX_RUNS, default=10)
    now = serializers.DateTimeField(
        required=False, help_text="Preview from this moment (default: now)."
    )
    task = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="a catalog task name: its declared overlap policy is the one overlap "
        "default follows",
    )
    overlap = serializers.CharField(
        required=False,
        allow_null=True,
        help_text=f"{', '.join(OverlapPolicy.values)} (default: default, the task's policy)",
    )
    catchup = serializers.CharField(
        required=False,
        allow_null=True,
        help_text=(
            f"runs missed while beat was down: {', '.join(CatchUp.values)} (default latest)"
        ),
    )
    catchup_window = SecondsField(
        help_text="catch up only runs missed by less than this: seconds or '30m', '1h'; "
        "null: no limit (the default)",
    )
    misfire = serializers.CharField(
        required=False,
        allow_null=True,
        help_text=f"{', '.join(MisfirePolicy.values)}: the presets of a catchup and its window",
    )
    jitter = SecondsField(
        help_text="publish each run up to this long after its due time: 0 to 3600 seconds "
        "or '30s', '5m' (default 0); the runs listed include it",
    )
    start_time = MomentField(
        help_text="ISO 8601: no run before it (no offset: in the schedule's zone)"
    )
    end_time = MomentField(
        help_text="ISO 8601, after start_time: no run from then on (no offset: in the "
        "schedule's zone)"
    )
    max_runs = CountField(help_text="stop after this many runs (at least 1); null: no limit")
    one_off = serializers.BooleanField(
        required=False, default=False, help_text="run once, then be disabled"
    )


class PreviewRunSerializer(serializers.Serializer[Any]):
    at = serializers.CharField(help_text="In the schedule's zone, ISO 8601 with its offset.")
    utc = serializers.CharField()


class SchedulePreviewSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    description = serializers.CharField()
    timezone = serializers.CharField()
    next_runs = PreviewRunSerializer(
        many=True,
        help_text="when beat would publish each run: after start_time, before end_time, at "
        "most max_runs, jitter included",
    )
    warnings = serializers.ListField(child=serializers.CharField(), help_text="DST changes")
    effects = serializers.ListField(
        child=serializers.CharField(),
        help_text="the policies in words, one line each (overlap, catch-up, jitter, start, "
        "end, max runs)",
    )
    cutoff = serializers.CharField(
        help_text="why the list stops early (an end time, max runs); empty when it does not"
    )
    notes = serializers.ListField(
        child=serializers.CharField(), help_text="e.g. when the schedule starts; no run due"
    )


class SchedulePreviewView(APIView):
    permission_classes = [StaffPermission]

    @extend_schema(
        request=SchedulePreviewInput,
        responses={200: SchedulePreviewSerializer, 400: ERRORS_RESPONSE},
        description=(
            "Read a schedule and its policies as saving them would, and list its next runs "
            "(in its zone and in UTC) with the DST warnings about them, the policies in words "
            "and the cut-off (an end time, max runs); nothing is saved. 400 names what cannot "
            "be read (a cron line that can never run, an unknown zone, a catchup_window of "
            "-1, an end before the start, max_runs 0)."
        ),
    )
    def post(self, request: Request) -> Response:
        body = validated(SchedulePreviewInput, request.data)
        # A ScheduleError naming the field is the 400 of every API call (scheduler/api/errors.py).
        dry_run = schedule_dry_run(
            schedule=body["schedule"],
            tz=body["timezone"],
            now=body.get("now"),
            count=body["count"],
            task=body.get("task") or None,
            overlap=body.get("overlap"),
            misfire=body.get("misfire"),
            catchup=body.get("catchup"),
            catchup_window=body.get("catchup_window"),
            jitter=body.get("jitter"),
            start_time=body.get("start_time") or None,
            end_time=body.get("end_time") or None,
            max_runs=body.get("max_runs"),
            one_off=body["one_off"],
        )
        parsed, preview = dry_run.parsed, dry_run.preview
        return Response(
            {
                "kind": parsed.kind,
                "description": parsed.description,
                "timezone": parsed.timezone,
                "next_runs": [
                    {"at": run.isoformat(), "utc": run.astimezone(UTC).isoformat()}
                    for run in preview.runs
                ],
                "warnings": preview.warnings,
                "effects": preview.effects,
                "cutoff": preview.cutoff,
                "notes": preview.notes,
            }
        )
