"""The REST API under `/api/`: catalog, tasks (run, follow, wait, revoke, retry), schedules,
dead letters (`dead_letters.py`), queues (`queues.py`: pause, resume, purge).

Views are thin: reads go through `scheduler.selectors`, writes through `scheduler.services`,
whose `ScheduleError` becomes `400 {"field": ["message"]}` (see `errors.py`). Routes are in
`urls.py`; `GET /api/tasks/{id}/?wait=S` is answered by the async front in `waiting.py`.

The base the agents' and the tournaments' APIs are built on (`base.py`: staff permission,
strict serializer, pages, the answers of a queued task, a refusal and a 404) is re-exported here;
other apps import it from here, never from the scheduler's own views or serializers.
"""

from __future__ import annotations

from scheduler.api.base import (
    ERRORS_RESPONSE,
    NOT_FOUND_RESPONSE,
    Pages,
    StaffPermission,
    StrictSerializer,
    TaskQueuedSerializer,
    absolute,
    field_errors,
    found,
    paginated,
    queued_response,
    task_queued,
    validated,
)

__all__ = [
    "ERRORS_RESPONSE",
    "NOT_FOUND_RESPONSE",
    "Pages",
    "StaffPermission",
    "StrictSerializer",
    "TaskQueuedSerializer",
    "absolute",
    "field_errors",
    "found",
    "paginated",
    "queued_response",
    "task_queued",
    "validated",
]
