"""What every app's task bodies share: queueing a follow-on task with the domain object its events
belong to, and running a task's work with a retry policy.

`task_enqueue` (runs.py) queues a run somebody asked for: a task named by text, its parameters
checked through the catalog, sent once the transaction commits. `task_queue` queues a task the
code holds, with parameters it built (a reply's delivery, each decision of a tournament's round).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError

from scheduler.core.retries import RetryPolicy
from scheduler.protocol import object_header

logger = logging.getLogger(__name__)

T = TypeVar("T")


def task_queue(task: Any, *, owner: tuple[str, object] | None = None, **kwargs: Any) -> None:
    """Queue a follow-on task; without a broker (CELERY_ENABLED=false), run it here.

    `owner` (("tournament", 7)) is the domain object its events belong to.
    """
    if settings.CELERY_ENABLED and owner:
        task.apply_async(kwargs=kwargs, headers=object_header(*owner))
    elif settings.CELERY_ENABLED:
        task.delay(**kwargs)
    else:
        task.apply(kwargs=kwargs, throw=False)  # its failure is its own, stored in history


def task_run_with_retries(task: Any, work: Callable[[], T], *, policy: RetryPolicy) -> T:
    """Run `work` for `task` (a bound Celery task), retrying as `policy` says; the last try's
    error is raised, so the run is stored FAILURE with its reason."""
    try:
        try:
            return work()
        except (OperationalError, InterfaceError) as exc:
            raise policy.database_error(str(exc)) from exc
    except policy.retryable as exc:
        retries = task.request.retries or 0
        if task.request.is_eager or retries >= policy.max_retries:
            raise
        logger.warning("%s: %s (retry %d of %d)", task.name, exc, retries + 1, policy.max_retries)
        raise task.retry(
            exc=exc, countdown=policy.delay(exc, retries), max_retries=policy.max_retries
        ) from exc
