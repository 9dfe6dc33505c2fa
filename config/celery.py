"""The Celery app: JSON only, UTC, named queues with routes and per-queue time limits."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Queue

from config.queues import QUEUES, queue_for, route_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")


class QueueTimeLimits:
    """Celery task annotation: a task gets its queue's limits unless it declares its own."""

    def annotate(self, task: Any) -> dict[str, int]:
        if task.time_limit is not None or task.soft_time_limit is not None:
            return {}
        spec = QUEUES[queue_for(task.name)]
        return {"time_limit": spec.hard_limit, "soft_time_limit": spec.soft_limit}


app = Celery("agent_scheduler")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
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
    broker_connection_retry_on_startup=True,
    task_default_queue="default",
    task_create_missing_queues=False,
    task_queues=[Queue(name, routing_key=name) for name in QUEUES],
    task_routes=(route_task,),
    task_annotations=(QueueTimeLimits(),),
)
app.autodiscover_tasks()
