"""How `manage.py scheduler` shows things: tables, times, log lines and JSON documents.

Pure rendering: the command reads through selectors and writes through services, then hands
rows to these functions. Times are shown in the schedule's zone when there is one, otherwise in
the command's zone (`--tz`, `TZ`, else settings.TIME_ZONE); JSON carries ISO 8601 with an
offset. Task arguments (a result's, a schedule's params, their audit trail) are shown with
secret values masked (scheduler/core/masking.py).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.catalog import CatalogEntry, load_catalog, overlap_resolved
from scheduler.core.durations import duration_written
from scheduler.core.formatting import result_duration
from scheduler.core.masking import masked, masked_text
from scheduler.live.events import event_level
from scheduler.models import AuditEntry, ScheduleOptions, TaskEvent
from scheduler.schedules.declared import declared_in
from scheduler.schedules.pauses import pause_dict, pause_of
from scheduler.schedules.policies import (
    CatchUp,
    MisfirePolicy,
    OverlapPolicy,
    catchup_summary,
    runs_left_summary,
)
from scheduler.services import ScheduleError, stored_kwargs

NONE = "-"
# Cells longer than this are cut in tables (the detailed and JSON formats keep everything).
_CELL_MAX = 48


def when(moment: datetime | None, tz: str | None = None) -> str:
    """'2025-01-15 09:00:00 CET': in `tz`, or the project's zone."""
    if moment is None:
        return NONE
    local = moment.astimezone(ZoneInfo(tz)) if tz else timezone.localtime(moment)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def seconds(value: float | None) -> str:
    if value is None:
        return NONE
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def one_line(text: str) -> str:
    """Messages for stderr: one line, whatever the exception text looked like."""
    return " ".join(str(text).split())


def json_document(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *cells]
    ]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = NONE if value is None or value == "" else one_line(str(value))
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


# --- Catalog -------------------------------------------------------------------------------------


def entry_as_dict(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "description": entry.description,
        "queue": entry.queue,
        "overlap": str(entry.overlap),
        "params_schema": entry.schema(),
    }


def schema_summary(schema: dict[str, Any]) -> list[str]:
    """One line per parameter: 'days: integer, default 30, >= 1. Delete results older than…'."""
    required = set(schema.get("required", []))
    lines = []
    for name, spec in schema.get("properties", {}).items():
        facts = [_schema_type(spec)]
        if name in required:
            facts.append("required")
        elif "default" in spec:
            facts.append(f"default {json.dumps(spec['default'])}")
        for key, symbol in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        ):
            if key in spec:
                facts.append(f"{symbol} {spec[key]}")
        line = f"{name}: {', '.join(facts)}"
        if spec.get("description"):
            line += f". {spec['description']}"
        lines.append(line)
    return lines


def _schema_type(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(value) for value in spec["enum"])
    if "anyOf" in spec:
        return " or ".join(_schema_type(option) for option in spec["anyOf"])
    if "$ref" in spec:
        return "object"
    kind = spec.get("type", "any")
    if kind == "array" and isinstance(spec.get("items"), dict):
        return f"list of {_schema_type(spec['items'])}"
    return str(kind)


# --- Periodic tasks ------------------------------------------------------------------------------


def options_of(periodic_task: PeriodicTask) -> ScheduleOptions | None:
    options: ScheduleOptions | None = getattr(periodic_task, "options", None)
    return options


OUTSIDE_CATALOG = "outside the catalog"


def task_label(periodic_task: PeriodicTask) -> str:
    """The task a periodic task runs, marked when it is outside the catalog."""
    if periodic_task.task in load_catalog():
        return periodic_task.task
    return f"{periodic_task.task} ({OUTSIDE_CATALOG})"


def overlap_label(periodic_task: PeriodicTask) -> str:
    """'skip', or 'default (currently: skip)' for the task's default."""
    options = options_of(periodic_task)
    policy = options.overlap if options is not None else OverlapPolicy.DEFAULT.value
    if policy != OverlapPolicy.DEFAULT:
        return str(policy)
    return f"{policy} (currently: {overlap_resolved(periodic_task.task, None).value})"


def periodic_task_as_dict(
    periodic_task: PeriodicTask, *, description: str, next_runs: list[datetime]
) -> dict[str, Any]:
    options = options_of(periodic_task)
    try:
        params: Any = json.loads(periodic_task.kwargs or "{}")
    except json.JSONDecodeError:
        params = periodic_task.kwargs
    return {
        "name": periodic_task.name,
        "task": periodic_task.task,
        "in_catalog": periodic_task.task in load_catalog(),
        "enabled": periodic_task.enabled,
        "schedule": options.phrase if options is not None and options.phrase else None,
        "schedule_description": description,
        "timezone": options.timezone if options is not None else "UTC",
        "params": _masked_arguments(params),
        "queue": periodic_task.queue or None,
        "description": periodic_task.description,
        "overlap": options.overlap if options is not None else str(OverlapPolicy.DEFAULT),
        "overlap_effective": str(
            overlap_resolved(periodic_task.task, options.overlap if options else None).value
        ),
        **policies_as_dict(periodic_task),
        "pause": pause_dict(periodic_task),
        "failure_streak": options.failure_streak if options is not None else 0,
        **declared_as_dict(periodic_task),
        "one_off": periodic_task.one_off,
        "last_run_at": iso(periodic_task.last_run_at),
        "total_run_count": periodic_task.total_run_count,
        "date_changed": iso(periodic_task.date_changed),
        "next_runs": [run.isoformat() for run in next_runs],
    }


def policies_as_dict(periodic_task: PeriodicTask) -> dict[str, Any]:
    """Catch-up (and the misfire preset it matches, for scripts of earlier versions), jitter,
    start and end times, runs left and pausing after failures."""
    options = options_of(periodic_task)
    catchup = options.catchup if options is not None else str(CatchUp.LATEST)
    window = options.catchup_window if options is not None else None
    max_runs = options.max_runs if options is not None else None
    remaining = options.remaining_runs if options is not None else None
    return {
        "catchup": catchup,
        "catchup_window": window,
        "catchup_summary": catchup_summary(catchup, window),
        "misfire": options.misfire if options is not None else str(MisfirePolicy.RUN_ONCE),
        "jitter": options.jitter if options is not None else 0,
        "start_time": iso(periodic_task.start_time),
        "end_time": iso(periodic_task.expires),
        "max_runs": max_runs,
        "remaining_runs": remaining,
        "runs_left": runs_left_summary(remaining, max_runs) or None,
        "pause_after_failures": options.pause_after_failures if options is not None else None,
    }


def jitter_label(seconds: int) -> str:
    """'none', or 'up to 30s after each due time'."""
    return f"up to {duration_written(seconds)} after each due time" if seconds else "none"


def pause_after_label(failures: int | None) -> str:
    if failures is None:
        return "never"
    return f"after {failures} failed {'run' if failures == 1 else 'runs'} in a row"


def enabled_label(periodic_task: PeriodicTask) -> str:
    """'yes', 'no', or 'paused' (disabled with who, why and until when)."""
    if periodic_task.enabled:
        return "yes"
    return "paused" if pause_of(periodic_task) is not None else "no"


def pause_label(periodic_task: PeriodicTask, tz: str | None = None) -> str:
    """'by alice until 2027-03-01 09:00 CET: deploy freeze' (in `tz`), or '' when not paused."""
    pause = pause_of(periodic_task)
    if pause is None:
        return ""
    zone = ZoneInfo(tz) if tz else timezone.get_current_timezone()
    return pause.text(zone).removeprefix("paused ")


def declared_as_dict(periodic_task: PeriodicTask) -> dict[str, Any]:
    """Where code declares it (or None), and field -> {database, code} for what staff changed
    since the last `scheduler sync`."""
    declared = declared_in(periodic_task)
    if declared is None:
        return {"declared_in": None, "drift": {}}
    return {
        "declared_in": declared.origin,
        "drift": {
            name: {"database": have, "code": want} for name, (have, want) in declared.drift.items()
        },
    }


def declared_label(periodic_task: PeriodicTask) -> str:
    """'tournaments/upkeep.py', '... (drift: schedule)', or '' when code does not declare it."""
    declared = declared_as_dict(periodic_task)
    if declared["declared_in"] is None:
        return ""
    drift = f" (drift: {', '.join(declared['drift'])})" if declared["drift"] else ""
    return f"{declared['declared_in']}{drift}"


def audit_actor(entry: AuditEntry) -> str:
    """Who: the Django user, else the OS user of a command line; '' for the system."""
    if entry.actor is not None:
        return entry.actor.get_username()
    return entry.actor_name


def audit_as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": iso(entry.created_at),
        "action": entry.action,
        "source": entry.source,
        "actor": entry.actor.get_username() if entry.actor is not None else None,
        # The OS user of a command line (with or without --as).
        "actor_name": entry.actor_name or None,
        "changes": masked(entry.changes),
    }


def changes_summary(changes: dict[str, Any]) -> str:
    """'schedule: "0 9 * * *" -> "0 10 * * *"; enabled: true -> false'."""
    parts = []
    for field, change in masked(changes).items():
        if isinstance(change, list) and len(change) == 2:
            old, new = change
            if old is None:
                if new in (None, "", [], {}):
                    continue  # a created entry lists every field: keep the line short
                parts.append(f"{field}={json.dumps(new, default=str)}")
            else:
                parts.append(
                    f"{field}: {json.dumps(old, default=str)} -> {json.dumps(new, default=str)}"
                )
        else:
            parts.append(f"{field}: {json.dumps(change, default=str)}")
    return "; ".join(parts)


# --- Task results --------------------------------------------------------------------------------


class ExtendedResult(Protocol):
    """Columns of TaskResult that the stubs bundled with celery-types predate."""

    periodic_task_name: str | None
    worker: str | None
    date_created: datetime
    date_started: datetime | None


def extended(result: TaskResult) -> ExtendedResult:
    return cast("ExtendedResult", result)


def stored_value(text: str | None, content_type: str = "application/json") -> Any:
    """A result or argument column as a JSON value when it holds JSON, else the text itself."""
    if text is None or content_type != "application/json":
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def stored_args(result: TaskResult) -> Any:
    """Positional arguments as a list: stored as a repr ('()'), sometimes inside a JSON string."""
    raw = result.task_args
    value = stored_value(raw)
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            return raw
    return list(value) if isinstance(value, tuple | list) else value


def result_kwargs(result: TaskResult) -> Any:
    try:
        return stored_kwargs(result)
    except ScheduleError:
        return result.task_kwargs  # cut at 1024 characters, or not a literal: show the text


def _masked_arguments(value: Any) -> Any:
    return masked_text(value) if isinstance(value, str) else masked(value)


def result_as_dict(result: TaskResult) -> dict[str, Any]:
    more = extended(result)
    return {
        "task_id": result.task_id,
        "task_name": result.task_name,
        "periodic_task_name": more.periodic_task_name,
        "status": result.status,
        "worker": more.worker,
        "args": _masked_arguments(stored_args(result)),
        "kwargs": _masked_arguments(result_kwargs(result)),
        "result": stored_value(result.result, result.content_type),
        "traceback": result.traceback,
        "date_created": iso(more.date_created),
        "date_started": iso(more.date_started),
        "date_done": iso(result.date_done),
        "duration_seconds": result_duration(result),
    }


RESULT_HEADERS = ("DONE", "STATUS", "TASK", "PERIODIC TASK", "DURATION", "WORKER", "TASK ID")


def result_row(result: TaskResult) -> tuple[object, ...]:
    more = extended(result)
    return (
        when(result.date_done),
        result.status,
        result.task_name,
        more.periodic_task_name,
        seconds(result_duration(result)),
        more.worker,
        result.task_id,
    )


def result_detailed(result: TaskResult) -> str:
    data = result_as_dict(result)
    more = extended(result)
    lines = [
        f"{result.task_id}  {result.status}",
        f"  task:          {result.task_name or NONE}",
        f"  periodic task: {more.periodic_task_name or NONE}",
        f"  worker:        {more.worker or NONE}",
        f"  created:       {when(more.date_created)}",
        f"  started:       {when(more.date_started)}",
        f"  done:          {when(result.date_done)}",
        f"  duration:      {seconds(data['duration_seconds'])}",
        f"  args:          {json.dumps(data['args'], default=str)}",
        f"  kwargs:        {json.dumps(data['kwargs'], default=str)}",
        f"  result:        {json.dumps(data['result'], default=str)}",
    ]
    if result.traceback:
        lines.append("  traceback:")
        lines.extend(f"    {line}" for line in result.traceback.rstrip().splitlines())
    return "\n".join(lines)


# --- Event log -----------------------------------------------------------------------------------


def event_as_dict(event: TaskEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "at": iso(event.created_at),
        "level": event_level(event.type),
        "type": event.type,
        "task_id": event.task_id or None,
        "task_name": event.task_name or None,
        "periodic_task_name": event.periodic_task_name or None,
        "state": event.state or None,
        "worker": event.worker or None,
        "duration_seconds": event.duration,
        "message": event.message,
        "payload": masked(event.payload),
        "object": (
            {"type": event.object_type, "id": event.object_id} if event.object_type else None
        ),
    }


def event_line(event: TaskEvent) -> str:
    """One log line: time, level, type, task, [periodic task], id, worker, duration, message."""
    parts = [when(event.created_at), f"{event_level(event.type):<7}", f"{event.type:<17}"]
    if event.task_name:
        parts.append(event.task_name)
    if event.periodic_task_name:
        parts.append(f"[{event.periodic_task_name}]")
    if event.task_id:
        parts.append(f"id={event.task_id}")
    if event.worker:
        parts.append(f"worker={event.worker}")
    if event.duration is not None:
        parts.append(f"took {seconds(event.duration)}")
    if event.message:
        parts.append(f"- {one_line(event.message)}")
    return " ".join(parts)
