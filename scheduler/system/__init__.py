"""The built-in system tasks (`scheduler.ping`, `scheduler.cleanup_results`, backups,
notifications, allow-listed commands) and what they call: database backups, webhooks and mail,
allow-listed shell commands. (The retention of every growing table is a service:
scheduler/services/retention.py; the cleanup task here runs it.)

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

__all__ = [
    "RESPONSE_NOTE",
    "NotificationError",
    "NotificationRejected",
    "webhook_post",
]
