"""Kept so that Celery finds the built-in tasks: `app.autodiscover_tasks()` and the catalog's
`load_catalog()` import each app's `tasks` module. The tasks are scheduler/system/tasks.py."""

from __future__ import annotations

import scheduler.system.tasks  # noqa: F401
