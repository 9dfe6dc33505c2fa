"""Reads of dead letters (runs that failed their last retry): the list staff work through, one
letter, and the dashboard's panel. Arguments are shown masked (scheduler/core/masking.py).

The table holds failures only, and resolved letters go after DEAD_LETTER_RETENTION_DAYS; lists
are read newest first along the (status, failed_at) index, and the dashboard counts open
letters only up to a cap, so that a burst of failures never makes it count them all.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from scheduler.catalog import load_catalog
from scheduler.core.masking import masked
from scheduler.models import DeadLetter
from scheduler.selectors.results import error_summary

# What the status filters accept: one status, or every letter.
DEAD_LETTER_STATUSES = (*DeadLetter.Status.values, "all")
# The dashboard's panel: its latest open letters, and its count up to this many.
DASHBOARD_DEAD_LETTERS = 10
OPEN_COUNT_CAP = 1000


def dead_letters_listed(
    *, status: str | None = None, task: str | None = None, text: str | None = None
) -> QuerySet[DeadLetter]:
    """Dead letters newest first: of one status (None or "all": any), of task `task` (its exact
    name), matching `text` (the start of a task id, or part of a task or periodic task name)."""
    rows = DeadLetter.objects.select_related("resolved_by").order_by("-failed_at", "-id")
    if status and status != "all":
        if status not in DeadLetter.Status.values:
            raise ValueError(
                f"unknown status {status!r} (use one of: {', '.join(DEAD_LETTER_STATUSES)})"
            )
        rows = rows.filter(status=status)
    if task:
        rows = rows.filter(task_name=task)
    text = (text or "").strip()
    if text:
        rows = rows.filter(
            Q(task_id__startswith=text)
            | Q(task_name__icontains=text)
            | Q(periodic_task_name__icontains=text)
        )
    return rows


def dead_letter_by_id(dead_letter_id: int) -> DeadLetter | None:
    return DeadLetter.objects.select_related("resolved_by").filter(pk=dead_letter_id).first()


def dead_letter_shown(
    letter: DeadLetter, *, catalog_names: frozenset[str] | None = None
) -> dict[str, Any]:
    """`letter` as every interface shows it: arguments masked, the error whole and as one line,
    and whether it can be requeued (open, and its task in the catalog now)."""
    names = catalog_names if catalog_names is not None else frozenset(load_catalog().names())
    resolved_by = letter.resolved_by
    return {
        "id": letter.pk,
        "task_id": letter.task_id,
        "task_name": letter.task_name,
        "periodic_task_name": letter.periodic_task_name,
        "kwargs": masked(letter.kwargs),
        "error": letter.error,
        "error_summary": error_summary(letter.error),
        "attempts": letter.attempts,
        "queue": letter.queue,
        "status": letter.status,
        "failed_at": letter.failed_at,
        "resolved_at": letter.resolved_at,
        "resolved_by": resolved_by.get_username() if resolved_by is not None else None,
        "requeued_as": letter.requeued_as,
        "object": (
            {"type": letter.object_type, "id": letter.object_id} if letter.object_type else None
        ),
        "requeueable": letter.status == DeadLetter.Status.OPEN and letter.task_name in names,
    }


def dead_letters_shown(letters: Any) -> list[dict[str, Any]]:
    """`dead_letter_shown` of each of `letters` (a page of them), the catalog read once."""
    names = frozenset(load_catalog().names())
    return [dead_letter_shown(letter, catalog_names=names) for letter in letters]


def dead_letters_overview(*, limit: int = DASHBOARD_DEAD_LETTERS) -> dict[str, Any]:
    """The dashboard's panel: how many letters are open (at most OPEN_COUNT_CAP; `capped`
    says there are more) and the latest `limit` of them."""
    open_rows = DeadLetter.objects.filter(status=DeadLetter.Status.OPEN)
    # Counted along the index, and no further than the cap.
    counted = open_rows.order_by().values("pk")[: OPEN_COUNT_CAP + 1].count()
    latest = open_rows.select_related("resolved_by").order_by("-failed_at", "-id")[:limit]
    return {
        "open": min(counted, OPEN_COUNT_CAP),
        "capped": counted > OPEN_COUNT_CAP,
        "rows": dead_letters_shown(latest),
    }
