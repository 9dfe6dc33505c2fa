"""The Celery app: JSON only, UTC, named queues with routes and per-queue time limits, and task
arguments masked wherever Celery shows them (scheduler/core/masking.py)."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from celery.utils.saferepr import saferepr
from kombu import Queue

from config.queues import QUEUES, queue_of, route_task
from scheduler.core import MaskSecretsFilter, configured_keys, mask, mask_serialised

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")


# Set on a task whose limits came from its queue, not from itself: a catalog entry that moves it
# to another queue gives it that queue's limits.
QUEUE_LIMITS_MARK = "limits_from_queue"


class QueueTimeLimits:
    """Celery task annotation: a task gets its queue's limits (the queue it declares, else the
    one its name is routed to) unless it declares its own."""

    def annotate(self, task: Any) -> dict[str, Any]:
        if task.time_limit is not None or task.soft_time_limit is not None:
            return {}
        spec = QUEUES[queue_of(task)]
        return {
            "time_limit": spec.hard_limit,
            "soft_time_limit": spec.soft_limit,
            QUEUE_LIMITS_MARK: True,
        }


class MaskingAMQP(AMQP):
    """Task messages whose `argsrepr` and `kwargsrepr` have secret values masked.

    Those reprs are what Celery logs (received, succeeded, failed), sends in its task-sent and
    task-received events and stores as a result's arguments; the task gets its real arguments.
    Every message goes through here: ours, beat's and those tasks queue themselves.
    """

    def as_task_v2(
        self,
        task_id: str,
        name: str,
        args: Any = None,
        kwargs: Any = None,
        *rest: Any,
        **options: Any,
    ) -> Any:
        keys = configured_keys()
        maxlevels = self.app.conf.task_repr_maxlevels
        given_args, given_kwargs = options.get("argsrepr"), options.get("kwargsrepr")
        options["argsrepr"] = (
            mask_serialised(given_args, keys)
            if given_args is not None
            else saferepr(mask(args or (), keys), self.argsrepr_maxsize, maxlevels=maxlevels)
        )
        options["kwargsrepr"] = (
            mask_serialised(given_kwargs, keys)
            if given_kwargs is not None
            else saferepr(mask(kwargs or {}, keys), self.kwargsrepr_maxsize, maxlevels=maxlevels)
        )
        return super().as_task_v2(task_id, name, args, kwargs, *rest, **options)


app = Celery("agent_scheduler", amqp=MaskingAMQP)
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

# A run in the caller (CELERY_ENABLED=false, apply) has no repr: Celery logs its real arguments.
for _logger in ("celery.app.trace", "celery.worker.strategy", "celery.worker.request"):
    logging.getLogger(_logger).addFilter(MaskSecretsFilter())
