"""Routes of the API, mounted under `/api/` by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, register_converter
from rest_framework.routers import SimpleRouter

from scheduler.api import (
    alerts,
    backfills,
    dead_letters,
    incidents,
    previews,
    queues,
    views,
    workers,
)
from scheduler.api.waiting import task_detail


class TaskIdConverter:
    """A Celery task id as we make them (uuid4) or as others might: no '/', no spaces, short.

    Anything else is answered 404 by the resolver, before a view or the database sees it.
    """

    regex = "[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TaskIdConverter, "task_id")
register_converter(dead_letters.DeadLetterIdConverter, "dead_letter_id")
register_converter(backfills.BackfillIdConverter, "backfill_id")

router = SimpleRouter()
router.register("schedules", views.ScheduleViewSet, basename="api-schedule")

urlpatterns: list[URLPattern | URLResolver] = [
    path("health/", views.HealthView.as_view(), name="api-health"),
    path(
        "schedules/preview/",
        previews.SchedulePreviewView.as_view(),
        name="api-schedule-preview",
    ),
    # By name (the router's schedule URLs are by id): a name may hold any character, "/" too.
    path(
        "schedules/<path:name>/backfill/",
        backfills.ScheduleBackfillView.as_view(),
        name="api-schedule-backfill",
    ),
    path("backfills/", backfills.BackfillListView.as_view(), name="api-backfills"),
    path(
        "backfills/<backfill_id:backfill_id>/",
        backfills.BackfillDetailView.as_view(),
        name="api-backfill-detail",
    ),
    path("catalog/", views.CatalogView.as_view(), name="api-catalog"),
    path("tasks/", views.TaskListView.as_view(), name="api-tasks"),
    path("tasks/<task_id:task_id>/", task_detail, name="api-task-detail"),
    path("tasks/<task_id:task_id>/revoke/", views.TaskRevokeView.as_view(), name="api-task-revoke"),
    path("tasks/<task_id:task_id>/retry/", views.TaskRetryView.as_view(), name="api-task-retry"),
    path("dead-letters/", dead_letters.DeadLetterListView.as_view(), name="api-dead-letters"),
    path(
        "dead-letters/<dead_letter_id:dead_letter_id>/",
        dead_letters.DeadLetterDetailView.as_view(),
        name="api-dead-letter-detail",
    ),
    path(
        "dead-letters/<dead_letter_id:dead_letter_id>/requeue/",
        dead_letters.DeadLetterRequeueView.as_view(),
        name="api-dead-letter-requeue",
    ),
    path(
        "dead-letters/<dead_letter_id:dead_letter_id>/discard/",
        dead_letters.DeadLetterDiscardView.as_view(),
        name="api-dead-letter-discard",
    ),
    *router.urls,
    *queues.urlpatterns,
    *alerts.urlpatterns,
    *incidents.urlpatterns,
    *workers.urlpatterns,
]
