"""Alerting on the pages: the dashboard's "Open incidents" panel, the rows of the incidents
page, and what every live page's script needs to raise alert toasts (`alerts_config`, read by
static/scheduler/lib/alerts.js on the dashboard, a chat and a tournament's page)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from scheduler import selectors
from scheduler.core.formatting import duration_text
from scheduler.models import Incident
from scheduler.permissions import MANAGE_ALERTS, staff_has


def alerts_config() -> dict[str, str]:
    """Where an alert toast links to: the failed run's page, the incidents page."""
    return {
        "task_url": reverse("dashboard-task", args=["__id__"]),
        "incidents_url": reverse("dashboard-incidents"),
    }


def incident_row(incident: Incident, *, now: datetime) -> dict[str, Any]:
    """An incident as the panel and the incidents page show it (the API's names)."""
    user = incident.acknowledged_by
    silenced = incident.silenced_until
    end = incident.resolved_at or now
    return {
        "id": incident.pk,
        "title": incident.title,
        "rule": incident.rule.name,
        "subject": incident.subject,
        "status": "open" if incident.is_open else "resolved",
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "lasted": duration_text(max((end - incident.opened_at).total_seconds(), 0.0)),
        "match_count": incident.match_count,
        "acknowledged_by": user.get_username() if user is not None else None,
        "acknowledged_at": incident.acknowledged_at,
        "acknowledge_note": incident.acknowledge_note,
        # Only a silence still running says anything.
        "silenced_until": silenced if silenced is not None and silenced > now else None,
    }


def incidents_panel(request: HttpRequest) -> dict[str, Any]:
    """The panel's context: the latest open incidents, how many are open, who may act."""
    now = timezone.now()
    return {
        "incidents": [incident_row(incident, now=now) for incident in selectors.incidents_open()],
        "incidents_open_count": selectors.incidents_open_count(),
        "can_manage_alerts": staff_has(request.user, MANAGE_ALERTS),
    }
