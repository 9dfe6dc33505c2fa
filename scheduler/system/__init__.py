"""The built-in system tasks (`scheduler.ping`, `scheduler.cleanup_results`, backups,
notifications, allow-listed commands) and what they call: database backups, webhooks and mail,
allow-listed shell commands, and the retention of every growing table.

The tasks register themselves with Celery when `scheduler.tasks` is imported (autodiscovery);
they are not re-exported here. The names other rooms and apps use are. Modules inside
`scheduler/` import by full path; other apps import from here.
"""

from __future__ import annotations

from scheduler.system.notifications import (
    RESPONSE_NOTE,
    NotificationError,
    NotificationRejected,
    webhook_post,
)
from scheduler.system.retention import (
    CLEANUP_SCHEDULE_NAME,
    HISTORY_TABLES,
    RetentionPolicy,
    RetentionRow,
    retention_clear,
    retention_overview,
    retention_register,
    retention_run,
)

__all__ = [
    "CLEANUP_SCHEDULE_NAME",
    "HISTORY_TABLES",
    "RESPONSE_NOTE",
    "NotificationError",
    "NotificationRejected",
    "RetentionPolicy",
    "RetentionRow",
    "retention_clear",
    "retention_overview",
    "retention_register",
    "retention_run",
    "webhook_post",
]
