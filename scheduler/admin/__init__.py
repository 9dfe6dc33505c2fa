"""The Django admin of the scheduler: django-celery-beat's periodic tasks and django-celery-results'
results, extended so that every write goes through `scheduler.services`.

Django's admin autodiscovery imports this package: importing it registers both admins. The
names other apps' admins use are re-exported here.
"""

from __future__ import annotations

from scheduler.admin.periodic_tasks import PeriodicTaskAdmin, broker_down_message
from scheduler.admin.task_results import TaskResultAdmin

__all__ = ["PeriodicTaskAdmin", "TaskResultAdmin", "broker_down_message"]
