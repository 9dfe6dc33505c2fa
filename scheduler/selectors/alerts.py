"""Reads of alerting: rules, channels, the notification log, and incidents (the open ones for
the dashboard's panel, every one a page at a time for the incidents page and the API).

Incidents are paged by key, never counted: the list is read from where the last page ended
(`IncidentCursor`), open ones first (the partial index of open incidents), then the resolved ones
newest first (the index on `opened_at`), so that a page costs the same on the millionth row.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from scheduler.models import AlertChannel, AlertRule, Incident, NotificationDelivery

# The dashboard's panel shows at most this many open incidents (the count says how many more).
OPEN_INCIDENTS_SHOWN = 20
# An incident's page and its API answer list its latest deliveries only.
INCIDENT_DELIVERIES_SHOWN = 50
INCIDENTS_PAGE_SIZE = 50
SEARCH_MAX_LENGTH = 200
CURSOR_MAX_LENGTH = 200

OPEN, RESOLVED, ALL = "open", "resolved", "all"
INCIDENT_STATUSES = (OPEN, RESOLVED, ALL)
# The lists each status reads, in order.
_PHASES = {OPEN: (OPEN,), RESOLVED: (RESOLVED,), ALL: (OPEN, RESOLVED)}


# --- rules, channels, deliveries -----------------------------------------------------------


def alert_rules() -> QuerySet[AlertRule]:
    """Every rule with its channels and `open_incidents` (a count), by name."""
    return (
        AlertRule.objects.prefetch_related("channels")
        .annotate(open_incidents=Count("incidents", filter=Q(incidents__resolved_at__isnull=True)))
        .order_by("name")
    )


def alert_rule_named(name: str) -> AlertRule | None:
    return alert_rules().filter(name=name).first()


def alert_channels() -> QuerySet[AlertChannel]:
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


def notification_deliveries(
    *, channel: str = "", status: str = "", kind: str = "", incident: int | None = None
) -> QuerySet[NotificationDelivery]:
    """The notification log, newest first, filtered by what is given."""
    deliveries = NotificationDelivery.objects.select_related("channel").order_by(
        "-created_at", "-id"
    )
    if channel:
        deliveries = deliveries.filter(channel__name=channel)
    if status:
        deliveries = deliveries.filter(status=status)
    if kind:
        deliveries = deliveries.filter(kind=kind)
    if incident is not None:
        deliveries = deliveries.filter(incident_id=incident)
    return deliveries


def delivery_get(delivery_id: int) -> NotificationDelivery | None:
    return NotificationDelivery.objects.select_related("channel").filter(pk=delivery_id).first()


# --- incidents -----------------------------------------------------------------------------

# Open incidents first (newest first), then the others by when they ended (the admin, the CLI).
INCIDENTS_OPEN_FIRST = (
    F("resolved_at").desc(nulls_first=True),
    F("opened_at").desc(),
    F("id").desc(),
)


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


def _incidents() -> QuerySet[Incident]:
    return Incident.objects.select_related("rule", "acknowledged_by").order_by("-opened_at", "-id")


def incidents_open(*, limit: int = OPEN_INCIDENTS_SHOWN) -> list[Incident]:
    """The open incidents, newest first, at most `limit`."""
    return list(_incidents().filter(resolved_at__isnull=True)[:limit])


def incidents_open_count() -> int:
    # Open incidents are few, and their partial index is all this reads.
    return Incident.objects.filter(resolved_at__isnull=True).count()


def incident_by_id(incident_id: int) -> Incident | None:
    return _incidents().filter(pk=incident_id).first()


def incident_deliveries(
    incident: Incident, *, limit: int = INCIDENT_DELIVERIES_SHOWN
) -> list[NotificationDelivery]:
    return list(notification_deliveries(incident=incident.pk)[:limit])


@dataclass(frozen=True)
class IncidentCursor:
    """Where a page of incidents ended: the list it was reading (open or resolved) and its last
    row. As text (`token`) it is opaque to clients, who only hand it back."""

    phase: str
    opened_at: datetime
    id: int

    @property
    def token(self) -> str:
        raw = f"{self.phase}|{self.opened_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> IncidentCursor:
        """The cursor `token` stands for; ValueError when it is not one of ours."""
        if not token or len(token) > CURSOR_MAX_LENGTH:
            raise ValueError("not a cursor of this list")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            phase, at, pk = raw.split("|")
            opened_at = datetime.fromisoformat(at)
            number = int(pk)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError("not a cursor of this list") from None
        if phase not in (OPEN, RESOLVED) or opened_at.tzinfo is None or not 0 < number < 2**63:
            raise ValueError("not a cursor of this list")
        return cls(phase, opened_at, number)


@dataclass(frozen=True)
class IncidentPage:
    incidents: list[Incident]
    # Where the next page starts; None on the last page.
    next: IncidentCursor | None


def _phase(phase: str, *, q: str, rule: str) -> QuerySet[Incident]:
    incidents = _incidents().filter(resolved_at__isnull=phase == OPEN)
    if rule:
        incidents = incidents.filter(rule__name=rule)
    if q:
        incidents = incidents.filter(
            Q(title__icontains=q) | Q(subject__icontains=q) | Q(rule__name__icontains=q)
        )
    return incidents


def incidents_page(
    *,
    status: str = ALL,
    q: str = "",
    rule: str = "",
    after: IncidentCursor | None = None,
    limit: int = INCIDENTS_PAGE_SIZE,
) -> IncidentPage:
    """One page of incidents: open ones first (newest first), then resolved ones (newest first)
    for `status` "all"; only one of those lists for "open" or "resolved". `q` searches titles,
    subjects and rule names; `after` is where the previous page ended."""
    phases = _PHASES[status]
    if after is not None:
        if after.phase not in phases:
            return IncidentPage([], None)
        phases = phases[phases.index(after.phase) :]
    rows: list[tuple[str, Incident]] = []
    for phase in phases:
        wanted = limit + 1 - len(rows)
        if wanted <= 0:
            break
        incidents = _phase(phase, q=q.strip(), rule=rule)
        if after is not None and after.phase == phase:
            # A range on the indexed column, rather than an OR the planner cannot use it for.
            incidents = incidents.filter(opened_at__lte=after.opened_at).exclude(
                opened_at=after.opened_at, pk__gte=after.id
            )
        rows += [(phase, incident) for incident in incidents[:wanted]]
    following = None
    if len(rows) > limit:
        phase, last = rows[limit - 1]
        following = IncidentCursor(phase, last.opened_at, last.pk)
    return IncidentPage([incident for _, incident in rows[:limit]], following)
