"""Writes over the stored history: clearing results and events (retention does the batches)."""

from __future__ import annotations

from scheduler.services.errors import ScheduleError
from scheduler.services.retention import HISTORY_TABLES, retention_clear, retention_run


def history_clear(*, older_than_days: int | None = None, batch_size: int | None = None) -> int:
    """Delete stored results and events (all, or older than N days) in batches; how many.

    The batches are retention's (scheduler/services/retention.py), so periodic tasks whose
    latest run went are pointed at the run before it.
    """
    if older_than_days is not None and older_than_days < 0:
        raise ScheduleError.on("older_than", "must be 0 or more days")
    if batch_size is not None and batch_size < 1:
        raise ScheduleError.on("batch_size", "must be 1 or more")
    if older_than_days is None:
        deleted = retention_clear(tables=HISTORY_TABLES, batch_size=batch_size)
    else:
        deleted = retention_run(
            tables=HISTORY_TABLES, older_than_days=older_than_days, batch_size=batch_size
        )
    return sum(deleted.values())
