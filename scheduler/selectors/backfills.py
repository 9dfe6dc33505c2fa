"""Reads of backfills (a schedule's runs of a range, made now): one by id, the latest ones."""

from __future__ import annotations

from django.db.models import QuerySet

from scheduler.models import Backfill


def backfill_by_id(backfill_id: int) -> Backfill | None:
    return Backfill.objects.select_related("requested_by").filter(pk=backfill_id).first()


def backfills_listed(*, periodic_task_name: str | None = None) -> QuerySet[Backfill]:
    """Newest first; those of one periodic task when named."""
    rows = Backfill.objects.select_related("requested_by").order_by("-created_at", "-id")
    if periodic_task_name:
        rows = rows.filter(periodic_task_name=periodic_task_name)
    return rows
