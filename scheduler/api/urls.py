"""Routes of the API, mounted under `/api/` by config/urls.py."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path, register_converter
from rest_framework.routers import SimpleRouter

from scheduler.api import alerts, incidents, views
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

router = SimpleRouter()
router.register("schedules", views.ScheduleViewSet, basename="api-schedule")

urlpatterns: list[URLPattern | URLResolver] = [
    path("health/", views.HealthView.as_view(), name="api-health"),
    path("catalog/", views.CatalogView.as_view(), name="api-catalog"),
    path("tasks/", views.TaskListView.as_view(), name="api-tasks"),
    path("tasks/<task_id:task_id>/", task_detail, name="api-task-detail"),
    path("tasks/<task_id:task_id>/revoke/", views.TaskRevokeView.as_view(), name="api-task-revoke"),
    path("tasks/<task_id:task_id>/retry/", views.TaskRetryView.as_view(), name="api-task-retry"),
    *router.urls,
    *alerts.urlpatterns,
    *incidents.urlpatterns,
]
