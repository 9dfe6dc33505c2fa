"""Reads of alerting: rules with their open incidents counted, channels with their last
delivery, incidents open first, an incident's deliveries, and the status staff read of one.

The admin and the CLI list from here, each page in a fixed number of queries whatever its size.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from scheduler.models import AlertChannel, AlertRule, Incident, NotificationDelivery

# Open incidents first (newest first), then the others by when they ended.
INCIDENTS_OPEN_FIRST = (
    F("resolved_at").desc(nulls_first=True),
    F("opened_at").desc(),
    F("id").desc(),
)


def alert_rules_listed() -> QuerySet[AlertRule]:
    """Every rule with its channels and `open_incidents`, by name."""
    return (
        AlertRule.objects.prefetch_related("channels")
        .annotate(open_incidents=Count("incidents", filter=Q(incidents__resolved_at__isnull=True)))
        .order_by("name")
    )


def alert_rule_named(name: str) -> AlertRule | None:
    return AlertRule.objects.prefetch_related("channels").filter(name=name).first()


def alert_channels_listed() -> QuerySet[AlertChannel]:
    """Every channel with the status and time of its last delivery (`last_status`,
    `last_delivery_at`, None before the first), by name."""
    last = NotificationDelivery.objects.filter(channel=OuterRef("pk")).order_by(
        "-created_at", "-id"
    )
    return AlertChannel.objects.annotate(
        last_status=Subquery(last.values("status")[:1]),
        last_delivery_at=Subquery(last.values("created_at")[:1]),
    ).order_by("name")


def alert_channel_named(name: str) -> AlertChannel | None:
    return AlertChannel.objects.filter(name=name).first()


def incidents_listed(
    *, open_only: bool = False, search: str = "", rule: str = ""
) -> QuerySet[Incident]:
    """Incidents open first; `search` in the title, subject or rule name (any case)."""
    queryset = Incident.objects.select_related("rule", "acknowledged_by")
    if open_only:
        queryset = queryset.filter(resolved_at__isnull=True)
    if rule:
        queryset = queryset.filter(rule__name=rule)
    text = search.strip()
    if text:
        queryset = queryset.filter(
            Q(title__icontains=text) | Q(subject__icontains=text) | Q(rule__name__icontains=text)
        )
    return queryset.order_by(*INCIDENTS_OPEN_FIRST)


def incident_get(incident_id: int) -> Incident | None:
    return Incident.objects.select_related("rule", "acknowledged_by").filter(pk=incident_id).first()


def incident_deliveries(incident: Incident) -> QuerySet[NotificationDelivery]:
    """Its notifications, oldest first (the order they were told in)."""
    return incident.deliveries.select_related("channel").order_by("created_at", "id")


def delivery_get(delivery_id: int) -> NotificationDelivery | None:
    return NotificationDelivery.objects.select_related("channel").filter(pk=delivery_id).first()


def incident_status(incident: Incident, now: datetime | None = None) -> str:
    """'resolved', 'silenced' (until a time still ahead), 'acknowledged' or 'open'."""
    if incident.resolved_at is not None:
        return "resolved"
    if incident.silenced_until is not None and incident.silenced_until > (now or timezone.now()):
        return "silenced"
    if incident.acknowledged_at is not None:
        return "acknowledged"
    return "open"


def incident_lasted(incident: Incident, now: datetime | None = None) -> float:
    """Seconds from its opening to its end, or to now while it is open."""
    end = incident.resolved_at or now or timezone.now()
    return max((end - incident.opened_at).total_seconds(), 0.0)
