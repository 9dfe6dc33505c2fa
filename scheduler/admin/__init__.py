"""The Django admin of the scheduler: django-celery-beat's periodic tasks and django-celery-results'
results, extended so that every write goes through `scheduler.services`.

Django's admin autodiscovery imports this package: importing it registers both admins. The
names other apps' admins use are re-exported here: the run-now mixin (`run_now.py`) and the
broker-down message their own queueing reports.
"""

from __future__ import annotations

from scheduler.admin.periodic_tasks import PeriodicTaskAdmin
from scheduler.admin.run_now import RunNowMixin, broker_down_message
from scheduler.admin.task_results import TaskResultAdmin

__all__ = ["PeriodicTaskAdmin", "RunNowMixin", "TaskResultAdmin", "broker_down_message"]
