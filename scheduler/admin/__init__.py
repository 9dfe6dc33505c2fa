"""The Django admin of the scheduler: django-celery-beat's periodic tasks and django-celery-results'
results, extended so that every write goes through `scheduler.services`; the dead letters
(dead_letters.py); backfills (backfills.py, with the periodic tasks' "Backfill…" action); and
alerting's channels, rules, incidents and notification log (alerts.py).

Django's admin autodiscovery imports this package: importing it registers every admin. The
names other apps' admins use are re-exported here (`run_now.py`): the run-now mixin, the loop
that queues each selected row and reports it, the broker-down message, the read-only admin; and
the pause action's second step (`pauses.py`: why and until when).
"""

from __future__ import annotations

from scheduler.admin.alerts import (
    AlertChannelAdmin,
    AlertRuleAdmin,
    IncidentAdmin,
    NotificationDeliveryAdmin,
)
from scheduler.admin.backfills import BackfillAdmin
from scheduler.admin.dead_letters import DeadLetterAdmin
from scheduler.admin.pauses import pause_step
from scheduler.admin.periodic_tasks import PeriodicTaskAdmin
from scheduler.admin.queue_pauses import QueuePauseAdmin
from scheduler.admin.run_now import ReadOnlyAdmin, RunNowMixin, broker_down_message, queue_each
from scheduler.admin.task_results import TaskResultAdmin

__all__ = [
    "AlertChannelAdmin",
    "AlertRuleAdmin",
    "BackfillAdmin",
    "DeadLetterAdmin",
    "IncidentAdmin",
    "NotificationDeliveryAdmin",
    "PeriodicTaskAdmin",
    "QueuePauseAdmin",
    "ReadOnlyAdmin",
    "RunNowMixin",
    "TaskResultAdmin",
    "broker_down_message",
    "pause_step",
    "queue_each",
]
