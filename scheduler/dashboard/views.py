from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from scheduler import selectors
from scheduler.catalog import load_catalog
from scheduler.dashboard.alerts import alerts_config, incidents_panel
from scheduler.live.consumers import EventFilter, FilterError
from scheduler.observability.health import check_beat, health_report
from scheduler.permissions import (
    CHANGE_SCHEDULE,
    CONTROL_WORKERS,
    RUN_TASKS,
    can_view_dashboard,
    staff_has,
)
from scheduler.protocol import FINISHED_STATES

View = Callable[..., HttpResponse]

# Geometry of the server-rendered charts; static/scheduler/lib/charts.js draws the same ones.
CHART_WIDTH, CHART_HEIGHT = 600, 120
SPARK_BAR, SPARK_GAP, SPARK_HEIGHT = 5, 1, 20


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    body = report.as_dict()
    # Shown, not judged: web and workers stay useful while beat restarts or fails over.
    body["beat"] = asdict(check_beat())
    return JsonResponse(body, status=200 if report.ok else 503)


def dashboard_access(*, json: bool = False) -> Callable[[View], View]:
    """Staff with `scheduler.view_dashboard` only: anonymous visitors are sent to the admin's
    login page (a JSON endpoint answers 401 instead), everyone else gets a 403."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                if json:
                    return JsonResponse({"detail": "not signed in"}, status=401)
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            if not can_view_dashboard(request.user):
                if json:
                    return JsonResponse({"detail": "permission denied"}, status=403)
                raise PermissionDenied("the dashboard needs scheduler.view_dashboard")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _throughput_bars(bins: list[dict[str, Any]]) -> dict[str, Any]:
    peak = max((b["succeeded"] + b["failed"] for b in bins), default=0)
    width = CHART_WIDTH / max(len(bins), 1)
    bars = []
    for k, b in enumerate(bins):
        ok = CHART_HEIGHT * b["succeeded"] / peak if peak else 0
        failed = CHART_HEIGHT * b["failed"] / peak if peak else 0
        bars.append(
            {
                "x": round(k * width + 1, 2),
                "width": round(width - 2, 2),
                "ok_y": round(CHART_HEIGHT - ok, 2),
                "ok_height": round(ok, 2),
                "failed_y": round(CHART_HEIGHT - ok - failed, 2),
                "failed_height": round(failed, 2),
                **b,
            }
        )
    return {"bars": bars, "peak": peak, "total": sum(b["succeeded"] + b["failed"] for b in bins)}


def _sparkline(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    longest = max((run["duration"] or 0 for run in runs), default=0)
    bars = []
    for k, run in enumerate(runs):
        share = (run["duration"] or 0) / longest if longest else 1
        height = max(3.0, SPARK_HEIGHT * share)
        bars.append(
            {
                "x": k * (SPARK_BAR + SPARK_GAP),
                "y": round(SPARK_HEIGHT - height, 2),
                "height": round(height, 2),
                **run,
            }
        )
    return bars


def heat_level(count: int, peak: int) -> int:
    """0 (no run) to 4 (the busiest slot): the shade of a heatmap cell."""
    if count <= 0 or peak <= 0:
        return 0
    return max(1, min(4, -(-4 * count // peak)))


def _heatmap(upcoming: dict[str, Any]) -> dict[str, Any]:
    peak = max(upcoming["totals"], default=0)
    row_peak = max(
        (max(row["counts"]) for row in upcoming["rows"] if not row["frequent"]), default=0
    )
    return {
        "totals": [
            {"count": n, "level": heat_level(n, peak), "at": at}
            for n, at in zip(upcoming["totals"], upcoming["slots"], strict=True)
        ],
        "rows": [
            {
                **row,
                "cells": [
                    {"count": n, "level": heat_level(n, row_peak), "at": at}
                    for n, at in zip(row["counts"], upcoming["slots"], strict=True)
                ],
            }
            for row in upcoming["rows"]
        ],
    }


def _permissions(request: HttpRequest) -> dict[str, bool]:
    return {
        "can_change": staff_has(request.user, CHANGE_SCHEDULE),
        "can_run": staff_has(request.user, RUN_TASKS),
        "can_control_workers": staff_has(request.user, CONTROL_WORKERS),
    }


def _config(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What the page's script needs to know: where to connect, what the user may do."""
    return {
        "ws_path": "/ws/events/",
        "api_root": "/api/",
        "task_url": reverse("dashboard-task", args=["__id__"]),
        "timezone": timezone.get_current_timezone_name(),
        "finished_states": sorted(FINISHED_STATES),
        **_permissions(request),
        **extra,
    }


def _summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    # The sparkline geometry is for the template; the script draws its own from the runs.
    periodic = [
        {key: value for key, value in row.items() if key != "sparkline"}
        for row in summary["periodic"]["rows"]
    ]
    return {**summary, "periodic": {**summary["periodic"], "rows": periodic}}


FILTER_TEXT_LENGTH = 255


def feed_filter(query: QueryDict) -> tuple[selectors.FeedFilter, list[str]]:
    """The feed's filter from the page's query string (the websocket's names: `task`,
    `state`, `object`, plus `periodic_task`), and what was not understood (left out).

    Each field is checked as /ws/events/ checks it, so that the page never asks the stream for
    a filter it refuses."""
    problems: list[str] = []
    parsed: dict[str, EventFilter] = {}
    for field in ("task", "state", "object"):
        try:
            parsed[field] = EventFilter.parse({field: query.get(field, "")})
        except FilterError as exc:
            problems.append(str(exc))
            parsed[field] = EventFilter()
    periodic_task = query.get("periodic_task", "").strip()[:FILTER_TEXT_LENGTH]
    where = selectors.FeedFilter(
        task=parsed["task"].task,
        periodic_task=periodic_task,
        states=parsed["state"].states,
        object_type=parsed["object"].object_type,
        object_id=parsed["object"].object_id,
    )
    return where, problems


def _filter_json(where: selectors.FeedFilter) -> dict[str, str]:
    return {
        "task": where.task,
        "periodic_task": where.periodic_task,
        "state": ",".join(sorted(where.states)),
        "object": f"{where.object_type}:{where.object_id}" if where.object_type else "",
    }


@require_GET
@never_cache
@dashboard_access()
def dashboard(request: HttpRequest) -> HttpResponse:
    summary = selectors.dashboard_summary()
    where, filter_problems = feed_filter(request.GET)
    feed = selectors.task_feed(where=where)
    for row in summary["periodic"]["rows"]:
        row["sparkline"] = _sparkline(row["runs"])
    panel = incidents_panel(request)
    context = {
        "summary": summary,
        "feed": feed,
        "feed_filter": _filter_json(where),
        "feed_filtered": where.active,
        "filter_problems": filter_problems,
        "feed_states": selectors.FEED_STATES,
        "catalog_names": load_catalog().names(),
        "chart": _throughput_bars(summary["throughput"]),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "spark_width": selectors.DASHBOARD_RECENT_RUNS * (SPARK_BAR + SPARK_GAP),
        "spark_height": SPARK_HEIGHT,
        "spark_bar": SPARK_BAR,
        "heatmap": _heatmap(summary["upcoming"]),
        "config": _config(
            request,
            summary_url=reverse("dashboard-summary"),
            # Failed runs that arrive live may be retried only when their task is a catalog one.
            catalog=load_catalog().names(),
            filter=_filter_json(where),
            alerts=alerts_config(),
            incidents_shown=selectors.OPEN_INCIDENTS_SHOWN,
            can_manage_alerts=panel["can_manage_alerts"],
        ),
        "initial": {**_summary_json(summary), "feed": feed},
        **_permissions(request),
        **panel,
    }
    return render(request, "scheduler/dashboard.html", context)


@require_GET
@never_cache
@dashboard_access(json=True)
def dashboard_summary(request: HttpRequest) -> JsonResponse:
    """The slower panels' data, re-read by the dashboard's script every half minute."""
    return JsonResponse(_summary_json(selectors.dashboard_summary()))


@require_GET
@never_cache
@dashboard_access()
def task_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    detail = selectors.task_detail(task_id)
    if detail is None:
        raise Http404("no task with this id")
    context = {
        "detail": detail,
        "config": _config(request, task_id=task_id, task_name=detail["task_name"]),
        **_permissions(request),
    }
    return render(request, "scheduler/task_detail.html", context)


FAVICON = "scheduler/favicon.svg"


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for whatever the page links: the static SVG icon."""
    # Not permanent: the static file's name changes with its content in production.
    response = HttpResponseRedirect(static(FAVICON))
    response["Cache-Control"] = "public, max-age=86400"
    return response
