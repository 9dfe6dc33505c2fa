"""Dead letters: a run of a catalog task that failed its last retry, kept until staff requeue or
discard it (scheduler/services/dead_letters.py).

Celery sends `task_failure` only once a run has no retry left (a retry sends `task_retry`), so
the receiver (scheduler/worker/receivers.py) writes here on failures only: nothing on the path
of a run that succeeds or retries.

One row per task id, written by one upsert: a duplicate delivery, or the same id failing again,
updates the row (error, attempts, time) and never adds a second one; a row staff resolved
already keeps its status. The keyword arguments are kept as the run was called (requeue runs
them again, after the catalog validated them anew) and shown masked; the error is kept masked.

Runs of tasks outside the catalog are not kept: a requeue goes through the catalog's
validation, which would refuse them, and Celery's own tasks (chord unlocks and the like) are
not the staff's to requeue. Their failures stay in the results and the event log as before.

Never fails the run: whatever goes wrong here is logged and the worker goes on.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.queues import QUEUES, queue_for
from scheduler.core.masking import masked_text
from scheduler.live.events import event_record_safely
from scheduler.models import DeadLetter
from scheduler.protocol import OBJECT_HEADER, EventType, RunState, object_of

logger = logging.getLogger(__name__)

# The stored error: its type and message, cut here (the traceback is in the run's result).
ERROR_MAX_LENGTH = 2000
_NAME_MAX = 255  # task_name, periodic_task_name, task_id
_QUEUE_MAX = 100

# Written again when the same task id fails again; status and resolution stay as staff left them.
_UPDATED_ON_CONFLICT = (
    "task_name",
    "periodic_task_name",
    "kwargs",
    "error",
    "attempts",
    "queue",
    "failed_at",
    "object_type",
    "object_id",
)


def error_text(exception: BaseException | None) -> str:
    """'ValueError: the message', secrets masked, at most ERROR_MAX_LENGTH characters."""
    if exception is None:
        return ""
    text = masked_text(f"{type(exception).__name__}: {exception}")
    return text if len(text) <= ERROR_MAX_LENGTH else text[: ERROR_MAX_LENGTH - 1] + "…"


def _header(request: Any, name: str) -> Any:
    # A worker puts message headers on the request; a run in the caller keeps them apart.
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def _jsonable(kwargs: Any) -> dict[str, Any]:
    # Called through the broker they are JSON already; a run in the caller may hold anything.
    if not isinstance(kwargs, dict):
        return {}
    try:
        value = json.loads(json.dumps(kwargs, default=str))
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _queue(request: Any, task_name: str) -> str:
    routing_key = ((getattr(request, "delivery_info", None) or {}).get("routing_key")) or ""
    return routing_key if routing_key in QUEUES else queue_for(task_name)


def _run_request(task: Any, task_id: str) -> Any:
    # The task's request is the run's only when its id is `task_id`: a hard time limit is
    # reported by the worker's main process, outside the run.
    request = task.request
    return request if getattr(request, "id", None) == task_id else None


def dead_letter_fields(
    task: Any, *, task_id: str, exception: BaseException | None, kwargs: Any, at: datetime
) -> dict[str, Any]:
    """The row of the failed run `task_id` of `task`."""
    request = _run_request(task, task_id)
    if kwargs is None and request is not None:
        kwargs = request.kwargs
    found = object_of({OBJECT_HEADER: _header(request, OBJECT_HEADER)}) if request else None
    return {
        "task_id": task_id[:_NAME_MAX],
        "task_name": task.name[:_NAME_MAX],
        "periodic_task_name": str(_header(request, "periodic_task_name") or "")[:_NAME_MAX],
        "kwargs": _jsonable(kwargs),
        "error": error_text(exception),
        "attempts": min((getattr(request, "retries", 0) or 0) + 1, 32767),
        "queue": _queue(request, task.name)[:_QUEUE_MAX],
        "failed_at": at,
        "object_type": found[0] if found else "",
        "object_id": found[1] if found else "",
    }


def dead_letter_keep(
    task: Any, *, task_id: str, exception: BaseException | None = None, kwargs: Any = None
) -> DeadLetter | None:
    """Keep the failed run `task_id` of `task` as a dead letter and record its event; the row,
    or None when the task is outside the catalog or the row could not be written (logged)."""
    if not task_id or not getattr(task, "in_catalog", False):
        return None
    try:
        fields = dead_letter_fields(
            task, task_id=task_id, exception=exception, kwargs=kwargs, at=timezone.now()
        )
        row = DeadLetter(**fields)
        # A savepoint when the run is called inside a transaction (eagerly, in a test or a
        # deployment without a broker): a failed write must not break the caller's.
        with transaction.atomic():
            DeadLetter.objects.bulk_create(
                [row],
                update_conflicts=True,
                unique_fields=["task_id"],
                update_fields=list(_UPDATED_ON_CONFLICT),
            )
            # Its id (not every database returns it from an upsert) and its status, which a
            # letter staff resolved already keeps.
            row.pk, row.status = DeadLetter.objects.values_list("pk", "status").get(
                task_id=row.task_id
            )
    except Exception:
        logger.warning(
            "could not keep the dead letter of %s[%s]", task.name, task_id, exc_info=True
        )
        return None
    event_record_safely(
        type=EventType.DEAD_LETTER,
        task_id=row.task_id,
        task_name=row.task_name,
        periodic_task_name=row.periodic_task_name,
        state=RunState.FAILURE,
        worker=getattr(_run_request(task, task_id), "hostname", "") or "",
        message=row.error,
        payload={
            "dead_letter_id": row.pk,
            "status": row.status,
            "attempts": row.attempts,
            "queue": row.queue,
        },
        object_type=row.object_type,
        object_id=row.object_id,
    )
    return row
