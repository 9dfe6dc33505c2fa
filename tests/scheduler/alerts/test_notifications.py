"""When an open incident is told again, and when it is held back: the repeat interval, a quiet
window, a silence, an acknowledgement."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from scheduler.models import AuditEntry, Incident, NotificationDelivery
from scheduler.services import incident_acknowledge, incident_silence
from scheduler.services.errors import ScheduleError
from scheduler.services.incidents import (
    Match,
    in_quiet_window,
    incident_match,
    incident_recover,
    notify_owed,
)
from scheduler.services.retention import retention_run
from tests.factories import make_channel, make_rule

pytestmark = pytest.mark.django_db(transaction=True)

NOON = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def open_incident(rule: Any, at: datetime = NOON) -> Incident:
    match = Match(rule=rule, subject="schedule:nightly", title="nightly failed", details={})
    return incident_match(match, now=at)


def kinds(sent: list[Any]) -> list[str]:
    return [notification.kind for _, notification in sent]


def test_repeats_wait_for_the_repeat_interval(recording_channels: list[Any]) -> None:
    make_channel()
    rule = make_rule(repeat_interval=3600)
    incident = open_incident(rule)
    assert notify_owed(incident, NOON + timedelta(minutes=59)) == 0
    open_incident(rule, NOON + timedelta(minutes=30))  # a match inside the interval: quiet
    assert kinds(recording_channels) == ["down"]
    incident.refresh_from_db()
    assert notify_owed(incident, NOON + timedelta(hours=1)) == 1
    incident.refresh_from_db()
    assert notify_owed(incident, NOON + timedelta(hours=1, minutes=1)) == 0
    assert kinds(recording_channels) == ["down", "repeat"]
    assert recording_channels[1][1].subject == "[STILL DOWN] nightly failed"


def test_a_repeat_interval_of_zero_never_repeats(recording_channels: list[Any]) -> None:
    make_channel()
    incident = open_incident(make_rule(repeat_interval=0))
    assert notify_owed(incident, NOON + timedelta(days=30)) == 0
    assert kinds(recording_channels) == ["down"]


def test_the_quiet_window_holds_the_down_until_it_ends(recording_channels: list[Any]) -> None:
    make_channel()
    rule = make_rule(quiet_start=time(22, 0), quiet_end=time(7, 0), quiet_timezone="Europe/Paris")
    night = datetime(2027, 3, 1, 23, 30, tzinfo=UTC)  # 00:30 in Paris
    assert in_quiet_window(rule, night)
    assert not in_quiet_window(rule, NOON)
    incident = open_incident(rule, night)
    assert recording_channels == []
    assert notify_owed(incident, night + timedelta(hours=5)) == 0  # 05:30 in Paris
    assert notify_owed(incident, night + timedelta(hours=7)) == 1  # 07:30: told now
    assert kinds(recording_channels) == ["down"]


def test_a_silence_holds_everything_until_it_ends(recording_channels: list[Any]) -> None:
    make_channel()
    incident = open_incident(make_rule(repeat_interval=60), at=timezone.now())
    incident_silence(
        incident_id=incident.pk,
        until=timezone.now() + timedelta(hours=2),
        actor=None,
        source="cli",
    )
    incident.refresh_from_db()
    assert notify_owed(incident, timezone.now() + timedelta(hours=1)) == 0
    incident_recover([incident.rule], incident.subject)
    assert kinds(recording_channels) == ["down"]  # the recovery is silenced too
    assert AuditEntry.objects.filter(action="silenced").count() == 1


def test_a_silence_must_end_in_the_future() -> None:
    make_channel()
    incident = open_incident(make_rule(), at=timezone.now())
    with pytest.raises(ScheduleError, match="until: must be in the future"):
        incident_silence(
            incident_id=incident.pk,
            until=timezone.now() - timedelta(minutes=1),
            actor=None,
            source="api",
        )


def test_acknowledged_incidents_stop_repeating_but_tell_the_recovery(
    recording_channels: list[Any],
) -> None:
    make_channel()
    user = User.objects.create_user("oncall")
    incident = open_incident(make_rule(repeat_interval=60))
    incident_acknowledge(incident_id=incident.pk, actor=user, note="on it", source="admin")
    incident.refresh_from_db()
    assert (incident.acknowledged_by, incident.acknowledge_note) == (user, "on it")
    assert notify_owed(incident, NOON + timedelta(hours=3)) == 0
    incident_recover([incident.rule], incident.subject, now=NOON + timedelta(hours=3))
    assert kinds(recording_channels) == ["down", "recovered"]
    assert "Recovered after 3 h" in recording_channels[1][1].message
    entry = AuditEntry.objects.get(action="acknowledged")
    assert (entry.actor, entry.changes) == (user, {"note": [None, "on it"]})


def test_a_held_back_down_means_no_recovered_either(recording_channels: list[Any]) -> None:
    make_channel()
    rule = make_rule(quiet_start=time(0, 0), quiet_end=time(23, 59))
    incident = open_incident(rule)
    incident_recover([rule], incident.subject, now=NOON + timedelta(minutes=5))
    assert recording_channels == []


def test_resolved_incidents_cannot_be_acknowledged() -> None:
    make_channel()
    rule = make_rule()
    incident = open_incident(rule)
    incident_recover([rule], incident.subject)
    with pytest.raises(ScheduleError, match="already resolved"):
        incident_acknowledge(incident_id=incident.pk, actor=None, source="cli")


def test_retention_deletes_resolved_incidents_and_old_deliveries_only(settings: Any) -> None:
    settings.ALERTS_RETENTION_DAYS = 30
    make_channel()
    rule = make_rule()
    old = open_incident(rule, at=timezone.now() - timedelta(days=40))
    incident_recover([rule], old.subject, now=timezone.now() - timedelta(days=39))
    still_open = incident_match(
        Match(rule=rule, subject="schedule:other", title="other failed", details={}),
        now=timezone.now() - timedelta(days=40),
    )
    NotificationDelivery.objects.update(created_at=timezone.now() - timedelta(days=40))
    deleted = retention_run(tables=["notification deliveries", "incidents"])
    assert deleted.complete
    assert list(Incident.objects.all()) == [still_open]
    assert not NotificationDelivery.objects.exists()
