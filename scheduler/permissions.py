"""Who may do what outside the admin: the dashboard, its websocket, the REST API, and the
command line acting as a Django user (`manage.py scheduler ... --as USER`).

Staff only, and then by permission (superusers have them all):
- watching: `scheduler.view_dashboard`;
- running catalog tasks, retrying runs, revoking and terminating them: `scheduler.run_tasks`;
- pausing, resuming and purging queues (and resizing and stopping workers):
  `scheduler.control_workers`;
- editing schedules (create, update, delete, enable, disable, run now): django-celery-beat's
  `change_periodictask` (and `add_`/`delete_` for creating and deleting), as in the admin;
- resizing, autoscaling and shutting down workers: `scheduler.control_workers`;
- alert rules and channels: their model permissions, as in the admin; acknowledging, silencing
  and resolving incidents: `scheduler.manage_alerts`;
- deleting stored results (`scheduler clear-history`): django-celery-results'
  `delete_taskresult`, as in the admin.
"""

from __future__ import annotations

from typing import Any

VIEW_DASHBOARD = "scheduler.view_dashboard"
RUN_TASKS = "scheduler.run_tasks"
CONTROL_WORKERS = "scheduler.control_workers"
ADD_SCHEDULE = "django_celery_beat.add_periodictask"
CHANGE_SCHEDULE = "django_celery_beat.change_periodictask"
DELETE_SCHEDULE = "django_celery_beat.delete_periodictask"
DELETE_RESULTS = "django_celery_results.delete_taskresult"
MANAGE_ALERTS = "scheduler.manage_alerts"
CONTROL_WORKERS = "scheduler.control_workers"
ADD_ALERT_RULE = "scheduler.add_alertrule"
CHANGE_ALERT_RULE = "scheduler.change_alertrule"
DELETE_ALERT_RULE = "scheduler.delete_alertrule"
ADD_ALERT_CHANNEL = "scheduler.add_alertchannel"
CHANGE_ALERT_CHANNEL = "scheduler.change_alertchannel"
DELETE_ALERT_CHANNEL = "scheduler.delete_alertchannel"


def is_staff(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def staff_has(user: Any, permission: str) -> bool:
    return is_staff(user) and bool(user.has_perm(permission))


def can_view_dashboard(user: Any) -> bool:
    return staff_has(user, VIEW_DASHBOARD)
