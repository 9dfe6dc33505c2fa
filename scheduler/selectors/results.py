"""Reads of task results: lists and filters, one task's status (Celery's AsyncResult) and
history, failures and the task page, stored arguments and tracebacks as staff read them."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from celery import states
from celery.result import AsyncResult
from django.db.models import Count, QuerySet
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from config.celery import app
from scheduler.catalog import load_catalog
from scheduler.core import masking
from scheduler.core.plain_text import shortened, text_lines
from scheduler.models import ScheduleState, TaskEvent
from scheduler.protocol import BUFFERED, FINISHED_STATES, RESPONSE_NOTE
from scheduler.selectors.dispatch import run_dispatch
from scheduler.selectors.events import event_wins
from scheduler.worker.task_base import SKIPPED

# --- Task results --------------------------------------------------------------------------------

# What people call a result's state -> Celery's state names (plus our SKIPPED and BUFFERED).
_OURS = frozenset({SKIPPED, BUFFERED})
RESULT_STATUS_ALIASES: dict[str, str] = {
    "failed": states.FAILURE,
    "failure": states.FAILURE,
    "error": states.FAILURE,
    "success": states.SUCCESS,
    "succeeded": states.SUCCESS,
    "completed": states.SUCCESS,
    "done": states.SUCCESS,
    "pending": states.PENDING,
    "queued": states.PENDING,
    "started": states.STARTED,
    "running": states.STARTED,
    "retry": states.RETRY,
    "retried": states.RETRY,
    "revoked": states.REVOKED,
    "cancelled": states.REVOKED,
    "canceled": states.REVOKED,
    "received": states.RECEIVED,
    "rejected": states.REJECTED,
    "ignored": states.IGNORED,
    "skipped": SKIPPED,
    "buffered": BUFFERED,
}


def result_status_named(text: str) -> str:
    """'failed' -> 'FAILURE': a result state from any usual spelling, in any case."""
    key = text.strip().lower()
    if key in RESULT_STATUS_ALIASES:
        return RESULT_STATUS_ALIASES[key]
    if key.upper() in states.ALL_STATES | _OURS:
        return key.upper()
    known = sorted(set(RESULT_STATUS_ALIASES.values()))
    raise ValueError(f"unknown status {text!r} (use one of: {', '.join(s.lower() for s in known)})")


def task_results(
    *,
    task_name: str | None = None,
    periodic_task_name: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> QuerySet[TaskResult]:
    """The latest `limit`, newest first; `status` is a Celery state name (see
    `result_status_named`)."""
    return task_history(
        task_name=task_name, periodic_task_name=periodic_task_name, status=status, since=since
    )[:limit]


# The list filters of the results admin offer the values of this many latest results (plus the
# catalog's task names): the distinct values of the whole history would be a scan per page.
RECENT_RESULTS_FOR_CHOICES = 2000


def _recent_values(field: str) -> set[str]:
    latest = TaskResult.objects.order_by("-date_done").values("pk")[:RECENT_RESULTS_FOR_CHOICES]
    return set(
        TaskResult.objects.filter(pk__in=latest)
        .order_by()
        .values_list(field, flat=True)
        .distinct()
        .exclude(**{f"{field}__isnull": True})
    )


def result_statuses() -> list[str]:
    """Every state a stored result can be in (Celery's and our SKIPPED and BUFFERED)."""
    return sorted(states.ALL_STATES | _OURS)


# At most this many periodic tasks are offered by the results list's filter: a deployment may
# have tens of thousands, too many for a sidebar (any other is still a `?periodic_task_name=`).
PERIODIC_TASK_CHOICES = 100


def periodic_task_names_run() -> list[str]:
    """Names of the periodic tasks that ran last (at most PERIODIC_TASK_CHOICES), from their
    state rows."""
    latest = ScheduleState.objects.order_by("-created_at").values_list(
        "periodic_task_name", flat=True
    )
    return sorted(latest[:PERIODIC_TASK_CHOICES])


def task_names_recent() -> list[str]:
    """The catalog's task names and those of the latest results."""
    return sorted(set(load_catalog().names()) | _recent_values("task_name"))


def workers_recent() -> list[str]:
    """The workers that stored the latest results."""
    return sorted(_recent_values("worker"))


def task_known(task_id: str) -> bool:
    """Whether a run of `task_id` was queued or stored: an event or a result names it."""
    return (
        TaskResult.objects.filter(task_id=task_id).exists()
        or TaskEvent.objects.filter(task_id=task_id).exists()
    )


@dataclass(frozen=True)
class RunIdentity:
    """What a run is called: its task, its periodic task ("" for an ad-hoc run) and the domain
    object it belongs to ("" when none), from its stored result or else its latest events."""

    task_id: str
    task_name: str
    periodic_task_name: str
    object_type: str = ""
    object_id: str = ""

    @property
    def name(self) -> str:
        """The name an audit entry of the run goes under: its periodic task's, else its task's."""
        return self.periodic_task_name or self.task_name or self.task_id


def run_identity(task_id: str) -> RunIdentity:
    result: Any = TaskResult.objects.filter(task_id=task_id).first()
    task_name = (result.task_name or "") if result is not None else ""
    periodic = (getattr(result, "periodic_task_name", "") or "") if result is not None else ""
    object_type = object_id = ""
    events = TaskEvent.objects.filter(task_id=task_id).order_by("-created_at", "-id")
    for event in events.only("task_name", "periodic_task_name", "object_type", "object_id")[:20]:
        task_name = task_name or event.task_name
        periodic = periodic or event.periodic_task_name
        if not object_type and event.object_type:
            object_type, object_id = event.object_type, event.object_id
    return RunIdentity(
        task_id=task_id,
        task_name=task_name,
        periodic_task_name=periodic,
        object_type=object_type,
        object_id=object_id,
    )


def task_result(task_id: str) -> TaskResult | None:
    return TaskResult.objects.filter(task_id=task_id).first()


def task_result_counts_since(since: datetime) -> dict[str, int]:
    rows = (
        TaskResult.objects.filter(date_done__gte=since)
        .values("status")
        .annotate(count=Count("pk"))
        .order_by("status")
    )
    return {row["status"]: row["count"] for row in rows}


@dataclass(frozen=True)
class TaskStatus:
    """One task as Celery's AsyncResult reports it; an unknown id is PENDING, as Celery says."""

    task_id: str
    state: str
    task_name: str | None
    result: Any
    error: str | None
    traceback: str | None
    date_started: datetime | None
    date_done: datetime | None
    worker: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


def task_status(task_id: str) -> TaskStatus:
    """The state of task `task_id` read through `AsyncResult` (the result backend)."""
    async_result: AsyncResult[Any] = AsyncResult(task_id, app=app)
    # One read of the backend: each property of a result that is not ready yet reads it again,
    # and could mix two states in one answer.
    meta: dict[str, Any] = cast(Any, async_result)._get_task_meta() or {}
    state = str(meta.get("status") or states.PENDING)
    value = meta.get("result")
    error = None
    if isinstance(value, BaseException):
        error = f"{type(value).__name__}: {value}"
        value = None
    elif state in (states.STARTED, states.PENDING):
        value = None  # a started task's "result" is the worker's pid and hostname
    # AsyncResult has no start time: our result backend adds the row's to the meta it reads
    # (scheduler/worker/result_backend.py); another backend has none.
    started = meta.get("date_started") if state != states.PENDING else None
    return TaskStatus(
        task_id=task_id,
        state=state,
        task_name=meta.get("task_name") or meta.get("name"),
        result=value,
        error=error,
        traceback=meta.get("traceback") or None,
        date_started=started,
        date_done=meta.get("date_done") if state in states.READY_STATES | {SKIPPED} else None,
        worker=meta.get("worker") or None,
    )


def task_history(
    *,
    task_name: str | None = None,
    periodic_task_name: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
) -> QuerySet[TaskResult]:
    """Stored results, newest first, unsliced (the API paginates it)."""
    queryset = TaskResult.objects.all()
    if task_name:
        queryset = queryset.filter(task_name=task_name)
    if periodic_task_name:
        queryset = queryset.filter(periodic_task_name=periodic_task_name)
    if status:
        queryset = queryset.filter(status=status)
    if since is not None:
        queryset = queryset.filter(date_done__gte=since)
    return queryset.order_by("-date_done", "-id")


def result_error(result: TaskResult) -> str:
    """'ValueError: bad input': the exception a failed result stored, in one line."""
    try:
        stored = json.loads(result.result or "null")
    except ValueError:
        stored = None
    if isinstance(stored, dict) and stored.get("exc_type"):
        message = stored.get("exc_message")
        if isinstance(message, list | tuple):
            message = " ".join(str(part) for part in message)
        return f"{stored['exc_type']}: {message}" if message else str(stored["exc_type"])
    lines = [line for line in (result.traceback or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


ERROR_SUMMARY_LENGTH = 200


def error_summary(text: str, *, length: int = ERROR_SUMMARY_LENGTH) -> str:
    """A stored error as one line of plain text: its first line with any markup stripped, cut
    at `length` characters (the failures panel; the whole error is on the task page)."""
    lines = text_lines(text)
    line = lines[0] if lines else ""
    if line.endswith(":") and len(lines) > 1:
        line = f"{line} {lines[1]}"  # "RuntimeError:" then the page that came with it
    return shortened(line, length)


def task_failures(*, limit: int = 20) -> list[dict[str, Any]]:
    """The latest failed runs, and runs failing now (an attempt failed, a retry is due: they can
    be revoked), newest first, with their error; whether a failed run can be retried (catalog
    tasks only: a retry goes through the same validation as a new run).

    Two reads by the status index, each of `limit` rows: runs wait in RETRY briefly, so those
    rows are few whatever the size of the history."""
    known = set(load_catalog().names())
    # Any: mypy misses some of django-celery-results' columns (periodic_task_name, worker).
    rows: list[Any] = []
    for status in (states.FAILURE, states.RETRY):
        results: Any = TaskResult.objects.filter(status=status).order_by("-date_done", "-id")
        rows.extend(results[:limit])
    rows.sort(key=lambda result: (result.date_done, result.pk), reverse=True)
    return [
        {
            "task_id": result.task_id,
            "task_name": result.task_name or "",
            "periodic_task_name": result.periodic_task_name or "",
            "worker": result.worker or "",
            "date_done": result.date_done,
            "error": error_summary(result_error(result)),
            "state": result.status,
            "retryable": result.status == states.FAILURE and (result.task_name or "") in known,
            "revocable": result.status == states.RETRY,
        }
        for result in rows[:limit]
    ]


def _stored_text(raw: str | None, *, masked: bool = False) -> str:
    """A results-backend text column (JSON, or JSON of a Python repr) as indented text.

    `masked`: arguments, shown with the values of secret keys masked (scheduler/core/masking.py).
    """
    text: Any = raw or ""
    for _ in range(2):  # the backend stores args and kwargs as JSON strings of their repr
        if not isinstance(text, str):
            break
        try:
            text = json.loads(text)
        except ValueError:
            try:
                text = ast.literal_eval(text)
            except (ValueError, SyntaxError, RecursionError, MemoryError):
                break
    if isinstance(text, str):
        return masking.masked_text(text) if masked else text
    if masked:
        text = masking.masked(text)
    return json.dumps(text, indent=2, sort_keys=True, default=str)


def stored_arguments(raw: str | None) -> str:
    """A result's stored args or kwargs as indented text, secret values masked."""
    return _stored_text(raw, masked=True)


_CHAINED = ("\n\nThe above exception was the direct cause", "\n\nDuring handling of the above")


def traceback_response(traceback: str | None) -> tuple[str, str, str]:
    """A failed run's traceback split around the receiver's answer a webhook error noted in it
    (scheduler/system/notifications.py): (traceback without it, the note's heading, the answer)."""
    text = traceback or ""
    found = re.search(rf"^{re.escape(RESPONSE_NOTE)} \([^\n]*\):\n", text, flags=re.MULTILINE)
    if found is None:
        return text, "", ""
    ends = [i for i in (text.find(mark, found.end()) for mark in _CHAINED) if i >= 0]
    end = min(ends, default=len(text))
    heading = found.group(0).strip().rstrip(":")
    rest = text[end:].lstrip("\n")
    without = text[: found.start()] + ("\n" + rest if rest else "")
    return without, heading, text[found.end() : end]


def task_detail(task_id: str) -> dict[str, Any] | None:
    """One task's stored result (None until a worker stored one), its events oldest first, and
    its periodic task when it still exists; None when nothing is known of `task_id`."""
    result: Any = TaskResult.objects.filter(task_id=task_id).first()  # Any: see task_failures
    events = list(TaskEvent.objects.filter(task_id=task_id).order_by("created_at", "id")[:500])
    if result is None and not events:
        return None
    names = [result.periodic_task_name if result else "", *(e.periodic_task_name for e in events)]
    periodic_task_name = next((name for name in names if name), "")
    task_names = [result.task_name if result else "", *(e.task_name for e in events)]
    periodic_task = (
        PeriodicTask.objects.filter(name=periodic_task_name).only("id", "name").first()
        if periodic_task_name
        else None
    )
    state = result.status if result is not None else ""
    if events:
        latest: dict[str, Any] = {"at": None, "state": ""}
        for event in events:
            if event_wins(latest, event.state, event.created_at):
                latest = {"at": event.created_at, "state": event.state}
        # The stored result is written once per state change; a newer event may say more.
        if not state or (state not in FINISHED_STATES and latest["state"]):
            state = latest["state"]
    task_name = next((name for name in task_names if name), "")
    return {
        "task_id": task_id,
        "task_name": task_name,
        "state": state,
        "result": result,
        "error": result_error(result) if result and result.status == states.FAILURE else "",
        # (traceback, heading, body): a webhook's answer apart from the traceback.
        "traceback": traceback_response(result.traceback if result else ""),
        "retryable": state == states.FAILURE and result is not None and task_name in load_catalog(),
        "arguments": stored_arguments(result.task_kwargs) if result else "",
        "positional": stored_arguments(result.task_args) if result else "",
        "output": _stored_text(result.result) if result else "",
        "queue": next((e.payload.get("queue", "") for e in events if e.type == "task.queued"), ""),
        "events": events,
        "periodic_task_name": periodic_task_name,
        "periodic_task": periodic_task,
        "worker": (result.worker if result else "")
        or next((e.worker for e in reversed(events) if e.worker), ""),
        "duration": next((e.duration for e in reversed(events) if e.duration is not None), None),
        "dispatch": run_dispatch(events),
    }
