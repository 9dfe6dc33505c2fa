from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scheduler.api.views import ApiIndexView, ApiNotFoundView
from scheduler.dashboard import account_views, incident_views, metrics_views
from scheduler.dashboard import views as scheduler_views

api_patterns = [
    path("api/", ApiIndexView.as_view(), name="api-index"),
    path("api/", include("scheduler.api.urls")),
    path("api/", include("agents.api.urls")),
    path("api/", include("tournaments.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        staff_member_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    # Last: every other path under /api/ answers a JSON 404, DEBUG or not (Django's handler404
    # is skipped when DEBUG is true, and its debug page is HTML).
    re_path(r"^api/(?P<rest>.+)$", ApiNotFoundView.as_view(), name="api-not-found"),
]

# The admin's "View site" goes to the dashboard, the product's front page.
admin.site.site_url = "/dashboard/"
admin.site.site_header = "Agent Scheduler administration"
admin.site.site_title = "Agent Scheduler admin"

urlpatterns = [
    # The front door is the dashboard; it sends anyone not signed in to the login.
    path("", RedirectView.as_view(pattern_name="dashboard", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("account/time-zone/", account_views.time_zone, name="time-zone"),
    path("favicon.ico", scheduler_views.favicon, name="favicon"),
    path("healthz", scheduler_views.healthz, name="healthz"),
    path("metrics", metrics_views.metrics, name="metrics"),
    path("dashboard/", scheduler_views.dashboard, name="dashboard"),
    path("dashboard/summary.json", scheduler_views.dashboard_summary, name="dashboard-summary"),
    path(
        "dashboard/schedules.json",
        scheduler_views.dashboard_schedules,
        name="dashboard-schedules",
    ),
    path("dashboard/incidents/", incident_views.incidents, name="dashboard-incidents"),
    # path: a task id is whatever its sender chose, slashes included.
    path("dashboard/tasks/<path:task_id>/", scheduler_views.task_detail, name="dashboard-task"),
    path("agents/", include("agents.urls")),
    path("tournaments/", include("tournaments.urls")),
    *api_patterns,
]

# Errors Django answers itself (no such URL, a crash outside DRF): JSON under /api/.
handler400 = "scheduler.api.errors.bad_request"
handler403 = "scheduler.api.errors.permission_denied"
handler404 = "scheduler.api.errors.page_not_found"
handler500 = "scheduler.api.errors.server_error"
