"""Shapes of the API: what requests may carry (types only) and what responses look like.

Input serializers check types and nothing more: the values are validated by the services, so
the API answers with the same messages as the admin and the CLI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scheduler.api.base import StrictSerializer, absolute
from scheduler.catalog import CatalogEntry, load_catalog, overlap_resolved
from scheduler.core.formatting import result_duration
from scheduler.schedules.declared import declared_in
from scheduler.schedules.parsing import zone_named
from scheduler.schedules.pauses import UNTIL_HELP, pause_dict
from scheduler.schedules.policies import (
    CatchUp,
    MisfirePolicy,
    OverlapPolicy,
    catchup_summary,
    runs_left_summary,
)
from scheduler.schedules.rows import schedule_describe
from scheduler.selectors import result_status_named, schedule_next_run
from scheduler.services import PAUSE_AFTER_MAX

# How long `GET /api/tasks/{id}/?wait=` may hold a request open.
MAX_WAIT_SECONDS = 30


# --- Catalog -------------------------------------------------------------------------------------


class CatalogEntrySerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    overlap = serializers.CharField()
    schema = serializers.SerializerMethodField(help_text="JSON Schema of the task's parameters")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_schema(self, entry: CatalogEntry) -> dict[str, Any]:
        return entry.schema()


# --- Tasks ---------------------------------------------------------------------------------------


class TaskRunSerializer(StrictSerializer):
    task = serializers.CharField(help_text="a catalog task name (GET /api/catalog/)")
    params = serializers.JSONField(
        required=False, default=dict, help_text="the task's parameters, as its schema declares"
    )
    queue = serializers.CharField(
        required=False, allow_null=True, help_text="a queue other than the task's own"
    )


class TaskRevokeSerializer(StrictSerializer):
    terminate = serializers.BooleanField(
        default=False, help_text="also stop the task if it is running (SIGTERM)"
    )


class TaskRevokedSerializer(serializers.Serializer[Any]):
    task_id = serializers.CharField()
    status = serializers.CharField(help_text='"revoke requested" or "terminate requested"')
    state = serializers.CharField(help_text="the run's state when asked (PENDING: queued)")
    task_name = serializers.CharField()
    periodic_task_name = serializers.CharField(help_text="empty for a run on demand")


@extend_schema_field(
    {
        "type": "number",
        "format": "double",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": MAX_WAIT_SECONDS,
    }
)
class WaitField(serializers.FloatField):
    """Seconds to wait, with its bounds in the schema (clients and fuzzers read them there)."""


class TaskWaitQuerySerializer(serializers.Serializer[Any]):
    wait = WaitField(
        required=False,
        help_text=(
            f"seconds (0 < wait <= {MAX_WAIT_SECONDS}) to hold the request until the task "
            "finishes; answered as soon as it does"
        ),
    )

    def validate_wait(self, value: float) -> float:
        if not math.isfinite(value) or not 0 < value <= MAX_WAIT_SECONDS:
            raise serializers.ValidationError(
                f"must be more than 0 and at most {MAX_WAIT_SECONDS} seconds"
            )
        return value


class TaskStatusSerializer(serializers.Serializer[Any]):
    """Read from a `selectors.TaskStatus`."""

    task_id = serializers.CharField()
    state = serializers.CharField(
        help_text="PENDING (also for an id Celery does not know), STARTED, RETRY, SUCCESS, "
        "FAILURE, REVOKED or SKIPPED"
    )
    task_name = serializers.CharField(allow_null=True)
    result = serializers.JSONField(allow_null=True, help_text="the return value, on SUCCESS")
    error = serializers.CharField(allow_null=True, help_text="'ExceptionType: message'")
    traceback = serializers.CharField(allow_null=True)
    date_started = serializers.DateTimeField(allow_null=True)
    date_done = serializers.DateTimeField(allow_null=True)
    worker = serializers.CharField(allow_null=True)


class TaskHistoryQuerySerializer(serializers.Serializer[Any]):
    task_name = serializers.CharField(required=False, help_text="catalog task name")
    periodic_task = serializers.CharField(required=False, help_text="periodic task name")
    status = serializers.CharField(
        required=False, help_text="failed, success, pending, started, retry, revoked, ..."
    )
    since = serializers.CharField(
        required=False, help_text="ISO 8601 date or time (naive: the server's TIME_ZONE)"
    )

    def validate_status(self, value: str) -> str:
        try:
            return result_status_named(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def validate_since(self, value: str) -> datetime:
        # As the CLI's --since reads it.
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise serializers.ValidationError(
                f"{value!r} is not an ISO 8601 date or time "
                "(e.g. 2025-01-15 or 2025-01-15T09:00:00+00:00)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone_named(settings.TIME_ZONE))
        try:
            moment.astimezone(UTC)  # as the database will be asked
        except OverflowError:
            raise serializers.ValidationError(
                f"{value!r} is outside the calendar once in UTC (years 1 to 9999)"
            ) from None
        return moment


class TaskResultSerializer(serializers.Serializer[Any]):
    task_id = serializers.CharField()
    task_name = serializers.CharField(allow_null=True)
    periodic_task_name = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    worker = serializers.CharField(allow_null=True)
    date_created = serializers.DateTimeField()
    date_done = serializers.DateTimeField()
    duration = serializers.SerializerMethodField(help_text="seconds, once the run is over")
    url = serializers.SerializerMethodField()

    def get_duration(self, result: TaskResult) -> float | None:
        return result_duration(result)

    def get_url(self, result: TaskResult) -> str:
        return absolute(self.context.get("request"), "api-task-detail", result.task_id)


# --- Schedules -----------------------------------------------------------------------------------


@extend_schema_field(
    {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}], "nullable": True}
)
class SecondsField(serializers.JSONField):
    """Seconds, or a duration as text ('30m', '1h'): passed as given to the services, which
    read it and name the field when they cannot."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "nullable": True})
class CountField(serializers.JSONField):
    """A count, passed as given to the services (their message, not DRF's, for a bad one)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, **kwargs)


@extend_schema_field({"type": "string", "format": "date-time", "nullable": True})
class MomentField(serializers.CharField):
    """ISO 8601 text, read by the services (one without an offset: in the schedule's zone)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, allow_blank=True, **kwargs)


class ScheduleInputSerializer(StrictSerializer):
    """A schedule to create or change; values are checked by the schedule services."""

    name = serializers.CharField(trim_whitespace=False, allow_blank=True)
    task = serializers.CharField(allow_blank=True, help_text="a catalog task name")
    schedule = serializers.CharField(
        allow_blank=True,
        help_text="plain English ('every monday at 8am', 'in 5 minutes') or cron ('0 9 * * 1')",
    )
    params = serializers.JSONField(required=False, allow_null=True)
    timezone = serializers.CharField(
        required=False, help_text="IANA zone the schedule is read in (default UTC)"
    )
    queue = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, help_text="default: the task's queue"
    )
    description = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    overlap = serializers.CharField(
        required=False,
        allow_null=True,
        help_text=(
            f"{', '.join(OverlapPolicy.values)}; default (the default): the task's policy as "
            "the catalog declares it when each run starts (GET /api/catalog/ shows it)"
        ),
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
        help_text=(
            f"{', '.join(MisfirePolicy.values)}: the presets of earlier versions, skip = "
            "catchup none, run_once = catchup latest with no window"
        ),
    )
    jitter = SecondsField(
        help_text="publish each run up to this long after its due time: 0 to 3600 seconds "
        "or '30s', '5m' (default 0)",
    )
    start_time = MomentField(help_text="ISO 8601: no run before it; null: none")
    end_time = MomentField(
        help_text="ISO 8601, after start_time: no run from then on (the periodic task's "
        "expires); null: none"
    )
    max_runs = CountField(
        help_text="stop after this many runs (at least 1); setting it sets the runs left to "
        "it; null: no limit",
    )
    pause_after_failures = CountField(
        help_text="pause after this many failed runs in a row; null: never"
    )
    enabled = serializers.BooleanField(required=False)


class SchedulePauseSerializer(StrictSerializer):
    """A pause: why, and until when; values are checked by the pause service."""

    note = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="why it is paused"
    )
    until = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        default=None,
        help_text=f"{UNTIL_HELP} (one without an offset is read in the server's TIME_ZONE)",
    )


class SchedulePauseOnFailureSerializer(StrictSerializer):
    after = serializers.IntegerField(
        allow_null=True,
        help_text=(
            f"pause the schedule by itself after this many failed runs in a row (1 to "
            f"{PAUSE_AFTER_MAX}); null: never"
        ),
    )


class PauseSerializer(serializers.Serializer[Any]):
    paused_at = serializers.DateTimeField()
    paused_by = serializers.CharField(
        allow_null=True,
        help_text="who paused it; null: no signed-in user (the system after failed runs, the CLI)",
    )
    note = serializers.CharField(help_text="why")
    until = serializers.DateTimeField(
        allow_null=True, help_text="when it resumes by itself; null: until resumed"
    )


class ScheduleListQuerySerializer(serializers.Serializer[Any]):
    enabled = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="only enabled or disabled ones"
    )


def schedule_arguments(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validated input as keyword arguments of schedule_create/schedule_update."""
    arguments = dict(data)
    if "timezone" in arguments:
        arguments["tz"] = arguments.pop("timezone")
    return arguments


class ScheduleSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    task = serializers.CharField()
    in_catalog = serializers.SerializerMethodField(
        help_text=(
            "false: the task is outside the catalog; the schedule can be disabled or deleted, "
            "not enabled, run or edited"
        )
    )
    schedule = serializers.SerializerMethodField(
        help_text="as written (English or cron), or the description of a stock schedule"
    )
    schedule_description = serializers.SerializerMethodField()
    timezone = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()
    queue = serializers.CharField(allow_null=True)
    enabled = serializers.BooleanField()
    description = serializers.CharField()
    overlap = serializers.SerializerMethodField(
        help_text=f"as saved: {', '.join(OverlapPolicy.values)}"
    )
    overlap_effective = serializers.SerializerMethodField(
        help_text="the policy the next run follows (default resolved through the catalog)"
    )
    misfire = serializers.SerializerMethodField(
        help_text="the preset catchup matches (skip: catchup none), kept for earlier clients"
    )
    catchup = serializers.SerializerMethodField(help_text=", ".join(CatchUp.values))
    catchup_window = serializers.SerializerMethodField(help_text="seconds; null: no limit")
    catchup_summary = serializers.SerializerMethodField(
        help_text="catch-up in words: 'none', 'latest, within 1h', 'all, however late'"
    )
    jitter = serializers.SerializerMethodField(help_text="seconds")
    start_time = serializers.DateTimeField(allow_null=True)
    end_time = serializers.DateTimeField(source="expires", allow_null=True)
    max_runs = serializers.SerializerMethodField()
    remaining_runs = serializers.SerializerMethodField()
    runs_left = serializers.SerializerMethodField(
        help_text="'3 of 5 runs left'; null: no limit on runs"
    )
    declared_in = serializers.SerializerMethodField(
        help_text="the file that declares it in code (`scheduler sync` keeps it), or null"
    )
    drift = serializers.SerializerMethodField(
        help_text="field -> {database, code}: what staff changed since the last sync"
    )
    pause = serializers.SerializerMethodField(
        help_text="who paused it, why and until when; null when it is not paused"
    )
    pause_after_failures = serializers.SerializerMethodField(
        help_text="it pauses itself after this many failed runs in a row; null: never"
    )
    failure_streak = serializers.SerializerMethodField(help_text="its failed runs in a row")
    next_run = serializers.SerializerMethodField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    total_run_count = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    def get_schedule(self, periodic_task: PeriodicTask) -> str:
        options = getattr(periodic_task, "options", None)
        if options is not None and options.phrase:
            return str(options.phrase)
        return self.get_schedule_description(periodic_task)

    def get_schedule_description(self, periodic_task: PeriodicTask) -> str:
        return schedule_describe(periodic_task)

    def get_timezone(self, periodic_task: PeriodicTask) -> str:
        options = getattr(periodic_task, "options", None)
        return str(options.timezone) if options is not None else "UTC"

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_params(self, periodic_task: PeriodicTask) -> Any:
        try:
            return json.loads(periodic_task.kwargs or "{}")
        except json.JSONDecodeError:
            return periodic_task.kwargs  # stored by hand as text that is not JSON

    def get_in_catalog(self, periodic_task: PeriodicTask) -> bool:
        return periodic_task.task in load_catalog()

    def get_overlap(self, periodic_task: PeriodicTask) -> str:
        options = getattr(periodic_task, "options", None)
        return str(options.overlap) if options is not None else str(OverlapPolicy.DEFAULT)

    def get_overlap_effective(self, periodic_task: PeriodicTask) -> str:
        options = getattr(periodic_task, "options", None)
        policy = options.overlap if options is not None else None
        return str(overlap_resolved(periodic_task.task, policy).value)

    def get_misfire(self, periodic_task: PeriodicTask) -> str:
        options = getattr(periodic_task, "options", None)
        return str(options.misfire) if options is not None else str(MisfirePolicy.RUN_ONCE)

    def get_catchup(self, periodic_task: PeriodicTask) -> str:
        options = getattr(periodic_task, "options", None)
        return str(options.catchup) if options is not None else str(CatchUp.LATEST)

    def get_catchup_window(self, periodic_task: PeriodicTask) -> int | None:
        options = getattr(periodic_task, "options", None)
        return options.catchup_window if options is not None else None

    def get_catchup_summary(self, periodic_task: PeriodicTask) -> str:
        return catchup_summary(
            self.get_catchup(periodic_task), self.get_catchup_window(periodic_task)
        )

    def get_jitter(self, periodic_task: PeriodicTask) -> int:
        options = getattr(periodic_task, "options", None)
        return int(options.jitter) if options is not None else 0

    def get_max_runs(self, periodic_task: PeriodicTask) -> int | None:
        options = getattr(periodic_task, "options", None)
        return options.max_runs if options is not None else None

    def get_remaining_runs(self, periodic_task: PeriodicTask) -> int | None:
        options = getattr(periodic_task, "options", None)
        return options.remaining_runs if options is not None else None

    def get_runs_left(self, periodic_task: PeriodicTask) -> str | None:
        left = runs_left_summary(
            self.get_remaining_runs(periodic_task), self.get_max_runs(periodic_task)
        )
        return left or None

    def get_pause_after_failures(self, periodic_task: PeriodicTask) -> int | None:
        options = getattr(periodic_task, "options", None)
        return options.pause_after_failures if options is not None else None

    def get_declared_in(self, periodic_task: PeriodicTask) -> str | None:
        declared = declared_in(periodic_task)
        return declared.origin if declared is not None else None

    @extend_schema_field(serializers.DictField(child=serializers.DictField()))
    def get_drift(self, periodic_task: PeriodicTask) -> dict[str, dict[str, Any]]:
        declared = declared_in(periodic_task)
        drift = declared.drift if declared is not None else {}
        return {name: {"database": have, "code": want} for name, (have, want) in drift.items()}

    @extend_schema_field(PauseSerializer(allow_null=True))
    def get_pause(self, periodic_task: PeriodicTask) -> dict[str, Any] | None:
        return pause_dict(periodic_task)

    def get_failure_streak(self, periodic_task: PeriodicTask) -> int:
        options = getattr(periodic_task, "options", None)
        return options.failure_streak if options is not None else 0

    def get_next_run(self, periodic_task: PeriodicTask) -> datetime | None:
        return schedule_next_run(periodic_task, now=self.context.get("now"))

    def get_url(self, periodic_task: PeriodicTask) -> str:
        return absolute(self.context.get("request"), "api-schedule-detail", periodic_task.pk)
