"""The Django admin of the scheduler: django-celery-beat's periodic tasks and django-celery-results'
results, extended so that every write goes through `scheduler.services`, and the dead letters.

Django's admin autodiscovery imports this package: importing it registers the three admins. The
names other apps' admins use are re-exported here (`run_now.py`): the run-now mixin, the loop
that queues each selected row and reports it, the broker-down message, the read-only admin.
"""

from __future__ import annotations

from scheduler.admin.dead_letters import DeadLetterAdmin
from scheduler.admin.periodic_tasks import PeriodicTaskAdmin
from scheduler.admin.run_now import ReadOnlyAdmin, RunNowMixin, broker_down_message, queue_each
from scheduler.admin.task_results import TaskResultAdmin

__all__ = [
    "DeadLetterAdmin",
    "PeriodicTaskAdmin",
    "ReadOnlyAdmin",
    "RunNowMixin",
    "TaskResultAdmin",
    "broker_down_message",
    "queue_each",
]
