"""What the product reports about itself: health (database, Redis, beat, workers), worker
heartbeats, Prometheus metrics, and table sizes read from the database's estimates.

The names other rooms use are re-exported here. Modules inside `scheduler/` import them by their
full path, so that no import depends on the order this file binds its names; other apps import
from here.
"""

from __future__ import annotations

from scheduler.observability.health import (
    BEAT_HEARTBEAT_KEY,
    BEAT_STANDBY_KEY,
    MISSED_RUNS_KEY,
    beat_heartbeat,
    beat_standbys,
    check_beat,
    full_health_report,
    health_report,
    missed_runs,
)
from scheduler.observability.metrics import MetricsBuffer, metrics_registry
from scheduler.observability.table_rows import counted_or_estimated, estimated_rows
from scheduler.observability.worker_heartbeats import (
    forget_worker,
    record_worker_seen,
    workers_seen_within,
)

__all__ = [
    "BEAT_HEARTBEAT_KEY",
    "BEAT_STANDBY_KEY",
    "MISSED_RUNS_KEY",
    "MetricsBuffer",
    "beat_heartbeat",
    "beat_standbys",
    "check_beat",
    "counted_or_estimated",
    "estimated_rows",
    "forget_worker",
    "full_health_report",
    "health_report",
    "metrics_registry",
    "missed_runs",
    "record_worker_seen",
    "workers_seen_within",
]
