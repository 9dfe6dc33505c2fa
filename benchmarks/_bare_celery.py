"""The baseline of the pipeline benchmarks: bare Celery, results in Redis, no Django.

The same worker settings as config/celery.py (prefork, acks_late, prefetch 1, task events,
task_track_started, extended results, JSON), nothing of ours: no database, no events, no
channel layer. Configured from the environment the benchmark sets before starting
`celery -A _bare_celery worker` (with benchmarks/ on PYTHONPATH):
BENCH_BARE_REDIS (a redis:// URL) and BENCH_BARE_PREFIX (a key prefix for this run).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from celery import Celery

QUEUE = "bench-bare"
NOOP = "bench.noop"

_redis = os.environ.get("BENCH_BARE_REDIS", "redis://127.0.0.1:6379/0")
_prefix = {"global_keyprefix": os.environ.get("BENCH_BARE_PREFIX", "bench-bare:")}


def make_app() -> Celery:
    """The app; the benchmark makes a new one per round, so that a round's producer starts
    afresh (with the Redis backend, every sent task subscribes to its result's channel)."""
    # No fixups: Celery would otherwise set Django up (and close its connections around every
    # task) whenever DJANGO_SETTINGS_MODULE is in the environment.
    bare = Celery("bare", set_as_current=False, fixups=[])
    bare.conf.update(
        broker_url=_redis,
        result_backend=_redis,
        broker_transport_options=_prefix,
        result_backend_transport_options=_prefix,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        timezone="UTC",
        enable_utc=True,
        result_extended=True,
        task_track_started=True,
        task_send_sent_event=True,
        worker_send_task_events=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=2,
        worker_max_tasks_per_child=int(os.environ.get("BENCH_MAX_TASKS_PER_CHILD", "1000")),
        broker_connection_retry_on_startup=True,
        task_default_queue=QUEUE,
    )
    bare.task(name=NOOP)(noop)
    return bare


def noop(*args: Any, **kwargs: Any) -> dict[str, Any]:
    # The same answer as scheduler.ping, so that both sides serialise the same result.
    return {"pong": True, "timestamp": datetime.now(UTC).isoformat()}


app = make_app()
