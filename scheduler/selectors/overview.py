"""The dashboard's summary: counts, failures, workers and queues, beat."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from config.queues import QUEUES
from scheduler.observability.health import beat_heartbeat, beat_standbys, missed_runs
from scheduler.observability.queues import paused_queues, queue_depths
from scheduler.observability.worker_heartbeats import workers_seen_within
from scheduler.selectors.dead_letters import dead_letters_overview
from scheduler.selectors.dispatch import dispatch_lag_overview
from scheduler.selectors.events import (
    _pending_since,
    task_activity_since,
    task_throughput,
    tasks_in_flight_since,
)
from scheduler.selectors.queues import queue_pause_shown
from scheduler.selectors.results import task_failures
from scheduler.selectors.schedules import declared_drift_count, upcoming_runs_shared


def workers_and_queues(*, window: float | None = None) -> dict[str, Any]:
    """Workers heard from in the last `window` seconds and each queue's depth and pause; a
    broker that cannot be read is reported in `error`, not raised (the dashboard must still
    render)."""
    window = settings.WORKER_HEALTH_WINDOW if window is None else window
    try:
        seen = workers_seen_within(window)
        depths = queue_depths()
    except Exception as exc:
        return {"workers": [], "queues": [], "window": window, "error": str(exc), "beat": None}
    paused = paused_queues()
    return {
        "beat": beat_overview(),
        "workers": [
            {"name": name, "last_seen": datetime.fromtimestamp(at, tz=UTC)}
            for name, at in sorted(seen.items())
        ],
        "queues": [
            {
                "name": name,
                "depth": depths.get(name, 0),
                "purpose": spec.purpose,
                **queue_pause_shown(paused.get(name)),
            }
            for name, spec in QUEUES.items()
        ],
        "window": window,
        "error": "",
    }


def beat_overview() -> dict[str, Any] | None:
    """The beat leader's heartbeat, its standbys and the runs its watchdog flagged; None when
    no beat has recorded a heartbeat (or Redis cannot be read)."""
    try:
        heartbeat = beat_heartbeat()
        standbys = beat_standbys()
        flagged = missed_runs()
    except Exception:
        return None
    if heartbeat is None and not standbys:
        return None
    return {
        "leader": (heartbeat or {}).get("leader") or (heartbeat or {}).get("id") or "",
        "seconds_ago": round(time.time() - float(heartbeat["at"]), 1) if heartbeat else None,
        "entries": (heartbeat or {}).get("entries"),
        "standbys": [standby.get("id", "") for standby in standbys],
        "missed": [
            {"name": name, "task_id": run.get("task_id", ""), "at": run.get("published_at", "")}
            for name, run in sorted(flagged.items())
        ],
    }


def dashboard_summary(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything the dashboard's slower panels show, as of `now` (the page renders it and its
    script re-reads it every half minute, counting live events in between). The periodic tasks
    table is read on its own, a page at a time (`schedules_page`)."""
    now = now or timezone.now()
    since = now - timedelta(hours=1)
    pending = _pending_since(since)
    return {
        "generated_at": now,
        "counts": task_activity_since(since, pending=pending),
        "in_flight": tasks_in_flight_since(since, pending=pending),
        "throughput": task_throughput(now=now),
        # Declared schedules staff changed since the last sync: one query per declaration row.
        "declared_drift": declared_drift_count(),
        # Every enabled schedule: one reading serves every open dashboard for a while.
        "upcoming": upcoming_runs_shared(now=now),
        "dispatch_lag": dispatch_lag_overview(),
        "failures": task_failures(),
        "dead_letters": dead_letters_overview(),
        "cluster": workers_and_queues(),
    }
