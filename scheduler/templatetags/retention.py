"""The admin index's "History retention" module (templates/admin/index.html)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

from scheduler.services.retention import retention_overview

register = template.Library()

# Who sees the module: the tables' sizes and ages are history, as task results are.
PERMISSION = "django_celery_results.view_taskresult"


@register.inclusion_tag("admin/scheduler/_retention.html", takes_context=True)
def retention_module(context: template.Context) -> dict[str, Any]:
    user = context.get("user") or getattr(context.get("request"), "user", None)
    if user is None or not user.has_perm(PERMISSION):
        return {"visible": False}
    rows = retention_overview()
    first = rows[0] if rows else None
    schedule_url = None
    if first is not None and first.cleanup_schedule_id is not None:
        try:
            schedule_url = reverse(
                "admin:django_celery_beat_periodictask_change", args=[first.cleanup_schedule_id]
            )
        except NoReverseMatch:  # the periodic tasks admin is not installed
            schedule_url = None
    return {
        "visible": True,
        "rows": rows,
        "next_cleanup": first.next_cleanup if first else None,
        "cleanup_schedule": first.cleanup_schedule if first else None,
        "schedule_url": schedule_url,
    }
