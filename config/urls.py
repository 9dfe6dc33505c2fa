from __future__ import annotations

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scheduler import api as scheduler_api
from scheduler import views as scheduler_views

api_patterns = [
    path("api/health/", scheduler_api.HealthView.as_view(), name="api-health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", scheduler_views.healthz, name="healthz"),
    path("dashboard/", scheduler_views.dashboard, name="dashboard"),
    *api_patterns,
]
