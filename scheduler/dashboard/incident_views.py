"""`/dashboard/incidents/`: open and past incidents, searched and paged (by cursor, as the API:
the list is never counted), rendered on the server."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from scheduler import selectors
from scheduler.dashboard.alerts import incident_row
from scheduler.dashboard.views import dashboard_access
from scheduler.selectors.alerts import ALL, INCIDENT_STATUSES, SEARCH_MAX_LENGTH, IncidentCursor

PAGE_SIZE = 50


@require_GET
@never_cache
@dashboard_access()
def incidents(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in INCIDENT_STATUSES:
        status = ALL
    q = request.GET.get("q", "").strip()[:SEARCH_MAX_LENGTH]
    problem = ""
    after = None
    if request.GET.get("cursor"):
        try:
            after = IncidentCursor.parse(request.GET["cursor"])
        except ValueError:
            problem = "That page link is not one of this list: showing the first page."
    page = selectors.incidents_page(status=status, q=q, after=after, limit=PAGE_SIZE)
    now = timezone.now()
    kept = {key: value for key, value in (("status", status), ("q", q)) if value and value != ALL}
    context = {
        "rows": [incident_row(incident, now=now) for incident in page.incidents],
        "status": status,
        "statuses": INCIDENT_STATUSES,
        "q": q,
        "problem": problem,
        "paged": after is not None,
        "first_url": "?" + urlencode(kept),
        "next_url": "?" + urlencode({**kept, "cursor": page.next.token}) if page.next else "",
        "open_count": selectors.incidents_open_count(),
    }
    return render(request, "scheduler/incidents.html", context)
