from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from scheduler import selectors
from scheduler.health import health_report


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)


@staff_member_required
@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "recent_results": selectors.recent_task_results(limit=25),
        "periodic_tasks": selectors.periodic_tasks_overview(),
    }
    return render(request, "scheduler/dashboard.html", context)
