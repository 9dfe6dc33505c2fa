"""What the dashboard's tests share: the events and the stored result of one run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scheduler.live.events import event_record
from tests.factories import stored_run


def record_run(
    task_id: str,
    *,
    at: datetime,
    end: str = "succeeded",
    task_kwargs: str = '"{}"',
    **fields: Any,
) -> None:
    """The events of one run: queued, started, and how it ended ('' for still running); and
    the result a worker stores when it ends."""
    fields.setdefault("task_name", "scheduler.ping")
    event_record(type="task.queued", task_id=task_id, state="PENDING", at=at, **fields)
    event_record(
        type="task.started",
        task_id=task_id,
        state="STARTED",
        worker="w1@host",
        at=at + timedelta(seconds=1),
        **fields,
    )
    if end:
        state = {"succeeded": "SUCCESS", "failed": "FAILURE", "skipped": "SKIPPED"}[end]
        duration = fields.pop("duration", 0.5)
        event_record(
            type=f"task.{end}",
            task_id=task_id,
            state=state,
            worker="w1@host",
            duration=duration,
            at=at + timedelta(seconds=2),
            **fields,
        )
        # And its stored result, as the worker writes it.
        started = at + timedelta(seconds=1)
        stored_run(
            task_id,
            status=state,
            started=started,
            done=started + timedelta(seconds=duration),
            worker="w1@host",
            task_kwargs=task_kwargs,
            **fields,
        )
