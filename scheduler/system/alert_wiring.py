"""Alerting connected to the rest: run events to the engine and to pause on failure, the watcher
(alert checks, and the resume of pauses that ended) started and stopped with worker and beat
processes, cached rules dropped when a rule or channel is saved here."""

from __future__ import annotations

from typing import Any

from celery.signals import beat_init, worker_ready, worker_shutdown
from django.db.models.signals import m2m_changed, post_delete, post_save

from scheduler.live.subscriptions import subscribe
from scheduler.models import AlertChannel, AlertRule
from scheduler.services.incidents import DELIVERY_TASK, alert_event, rules_reload
from scheduler.services.pauses import schedule_run_ended
from scheduler.system.alerting import watcher_start, watcher_stop

_connected = False


def _run_event(event: Any) -> None:
    # A failing delivery must not alert about itself (a loop of notifications).
    if event["task_name"] != DELIVERY_TASK:
        alert_event(event)


def _reload(**_: Any) -> None:
    rules_reload()


def connect() -> None:
    global _connected
    if _connected:
        return
    _connected = True
    subscribe("task.*", _run_event)
    # After the engine's own handler: a schedule pausing itself opens its incident after the
    # incident of the failure that paused it.
    subscribe("task.failed", schedule_run_ended)
    subscribe("task.succeeded", schedule_run_ended)
    worker_ready.connect(watcher_start, weak=False)
    beat_init.connect(watcher_start, weak=False)
    worker_shutdown.connect(watcher_stop, weak=False)
    for model in (AlertRule, AlertChannel):
        post_save.connect(_reload, sender=model, weak=False)
        post_delete.connect(_reload, sender=model, weak=False)
    m2m_changed.connect(_reload, sender=AlertRule.channels.through, weak=False)
