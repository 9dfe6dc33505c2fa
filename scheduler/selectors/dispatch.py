"""Reads of dispatch lag: the dashboard's panel (p50/p95 of each step per schedule) and one
run's times, due -> published -> started -> finished, for its task page.

Per schedule the figures come from the rolling samples the workers keep in Redis
(scheduler/observability/dispatch_lag.py), never from the history: the panel reads one sorted
set and one short list per schedule it shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django_celery_beat.models import PeriodicTask

from scheduler.models import TaskEvent
from scheduler.observability.dispatch_lag import (
    SAMPLES,
    parse_instant,
    schedule_lags,
    schedules_sampled,
)
from scheduler.protocol import DISPATCH_STEPS

# The schedules the dashboard's panel shows: those run most lately, this many at most.
DASHBOARD_DISPATCH_LAG = 25


def dispatch_lag_overview(*, limit: int = DASHBOARD_DISPATCH_LAG) -> dict[str, Any]:
    """The `limit` schedules run most lately, by name, with each step's p50 and p95 over their
    latest runs (at most `samples` each); how many schedules have samples (`total`). Redis that
    cannot be read is reported in `error`, not raised (the dashboard must still render)."""
    panel: dict[str, Any] = {"steps": list(DISPATCH_STEPS), "samples": SAMPLES}
    try:
        names, total = schedules_sampled(limit=limit, now=time.time())
        lags = schedule_lags(names)
    except Exception as exc:
        return {**panel, "rows": [], "total": 0, "error": str(exc)}
    ids = dict(
        PeriodicTask.objects.filter(name__in=[lag.name for lag in lags]).values_list("name", "pk")
    )
    rows = [
        # id None: the schedule was deleted since (its samples expire with their TTL).
        {**lag.as_dict(), "id": ids.get(lag.name)}
        for lag in sorted(lags, key=lambda lag: lag.name)
    ]
    return {**panel, "rows": rows, "total": total, "error": ""}


def run_dispatch(events: Iterable[TaskEvent]) -> dict[str, Any] | None:
    """One run's dispatch times (datetimes) and lags (seconds) from its events: the end of its
    first attempt when it has ended, else its start; None when its events carry none."""
    found: dict[str, Any] | None = None
    for event in events:
        dispatch = (event.payload or {}).get("dispatch")
        if not isinstance(dispatch, dict):
            continue
        # The first attempt's: later ones carry none. Its end says more than its start.
        if found is None or ("finished" in dispatch and "finished" not in found):
            found = dispatch
    if found is None:
        return None
    lags = found.get("lags")
    if not isinstance(lags, dict):
        lags = {}
    times = ("due", "published", "started", "finished")
    return {
        **{name: parse_instant(found.get(name)) for name in times},
        "lags": {step: lags.get(step) for step in DISPATCH_STEPS},
    }
