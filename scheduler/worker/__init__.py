"""The worker runtime: what runs inside `celery worker` around every task body. The catalog
tasks' base class (overlap policies, the SKIPPED and BUFFERED states), one execution per delivery
(deduplication), the result backend (one upsert per state, with the schedule's state) and the
receivers that turn Celery's lifecycle signals into events.

Only the task base class is re-exported here: the receivers are connected by the app's `ready()`
and the result backend is named in the settings, so importing this package connects nothing and
loads no model. Modules inside `scheduler/` import by full path; other apps import from here.
"""

from __future__ import annotations

from scheduler.worker.task_base import SKIPPED, CatalogTask

__all__ = ["SKIPPED", "CatalogTask"]
