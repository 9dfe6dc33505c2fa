"""The incident admin and the delivery log, through the Django test client: incidents listed
open first, acknowledged (with a note, on a page of its own), silenced and resolved through the
services with their audit entries, by staff holding manage_alerts only; both read-only.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from scheduler.models import AuditEntry, Incident, NotificationDelivery, Source
from tests.alert_setup import alerting, open_incident
from tests.clients import client_for
from tests.factories import make_channel, make_rule, user_with
from tests.scheduler.admin.helpers import page_messages

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("alerting")]
__all__ = ["alerting"]

INCIDENTS = reverse("admin:scheduler_incident_changelist")
DELIVERIES = reverse("admin:scheduler_notificationdelivery_changelist")


@pytest.fixture
def incident(django_capture_on_commit_callbacks) -> Incident:
    """An open incident of rule "failures", told once ("down") to channel "ops"."""
    make_channel()
    with django_capture_on_commit_callbacks(execute=True):
        return open_incident(make_rule(), details={"error": "boom", "task_id": "t-1"})


def act(client, action: str, *incidents: Incident, **extra: str):
    data = {"action": action, "_selected_action": [i.pk for i in incidents], **extra}
    return client.post(INCIDENTS, data, follow=True)


def trail(incident: Incident) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(periodic_task_name=f"incident {incident.pk}"))


# --- the list ----------------------------------------------------------------------------------


def test_it_lists_open_incidents_first_with_their_status(admin_client, incident):
    old = Incident.objects.create(
        rule=incident.rule,
        subject="schedule:old",
        title="an old one",
        opened_at=timezone.now() - timedelta(days=2),
        resolved_at=timezone.now() - timedelta(days=1),
        last_match_at=timezone.now() - timedelta(days=2),
    )
    newer = open_incident(incident.rule, "schedule:newer", title="a newer one")
    Incident.objects.filter(pk=newer.pk).update(silenced_until=timezone.now() + timedelta(hours=1))

    response = admin_client.get(INCIDENTS)

    shown = list(response.context["cl"].result_list)
    assert shown == [newer, incident, old]
    page = response.content.decode()
    for status in ("silenced", "open", "resolved"):
        assert f'<td class="field-status">{status}</td>' in page


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ({"state": "open"}, ["schedule 'nightly' failed"]),
        ({"state": "resolved"}, ["queue 'default' has no worker"]),
        ({"acknowledged": "yes"}, []),
        ({"rule__trigger": "no_worker"}, ["queue 'default' has no worker"]),
        ({"q": "DEFAULT"}, ["queue 'default' has no worker"]),
        ({"q": "failures"}, ["schedule 'nightly' failed"]),
    ],
)
def test_it_filters_and_searches_incidents(admin_client, incident, query, titles):
    other = open_incident(
        make_rule("workers", "no_worker", duration=60),
        "queue:default",
        title="queue 'default' has no worker",
    )
    Incident.objects.filter(pk=other.pk).update(resolved_at=timezone.now())

    response = admin_client.get(INCIDENTS, query)

    assert [row.title for row in response.context["cl"].result_list] == titles


# --- actions -----------------------------------------------------------------------------------


def test_acknowledge_asks_for_a_note_then_acknowledges_with_it(admin_client, admin_user, incident):
    page = act(admin_client, "acknowledge", incident)
    assert page.templates[0].name == "admin/scheduler/incident/acknowledge.html"
    assert 'name="note"' in page.content.decode()
    assert Incident.objects.get().acknowledged_at is None

    response = act(admin_client, "acknowledge", incident, post="yes", note="on it: disk full")

    incident.refresh_from_db()
    assert incident.acknowledged_by == admin_user
    assert incident.acknowledge_note == "on it: disk full"
    [entry] = trail(incident)
    assert (entry.action, entry.source, entry.actor) == ("acknowledged", Source.ADMIN, admin_user)
    assert entry.changes == {"note": [None, "on it: disk full"]}
    assert any(text.startswith("Acknowledged: ") for text in page_messages(response))


def test_silence_and_lift_go_through_the_service(admin_client, admin_user, incident):
    act(admin_client, "silence_4h", incident)

    incident.refresh_from_db()
    assert incident.silenced_until is not None
    ahead = incident.silenced_until - timezone.now()
    assert timedelta(hours=3, minutes=59) < ahead <= timedelta(hours=4)

    response = act(admin_client, "lift_silence", incident)

    incident.refresh_from_db()
    assert incident.silenced_until is None
    entries = trail(incident)
    assert [(e.action, e.source, e.actor) for e in entries] == [
        ("silenced", Source.ADMIN, admin_user)
    ] * 2
    assert entries[0].changes["silenced_until"][1] is None  # newest first: the lift
    assert any("Silence lifted" in text for text in page_messages(response))


def test_resolve_closes_tells_and_audits_and_refuses_twice(
    admin_client, admin_user, incident, alerting, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        act(admin_client, "resolve", incident)

    incident.refresh_from_db()
    assert incident.resolved_at is not None
    assert [notification.kind for _, notification in alerting] == ["down", "recovered"]
    [entry] = trail(incident)
    assert (entry.action, entry.source, entry.actor) == ("updated", Source.ADMIN, admin_user)
    assert entry.changes["resolved_at"][0] is None

    again = act(admin_client, "resolve", incident)
    acknowledged = act(admin_client, "acknowledge", incident, post="yes", note="late")

    assert f"Incident {incident.pk}: incident {incident.pk} is already resolved" in (
        page_messages(again) + page_messages(acknowledged)
    )
    assert len(trail(incident)) == 1
    assert Incident.objects.get().acknowledged_at is None


def test_staff_without_manage_alerts_cannot_acknowledge(incident):
    viewer = client_for(user_with("scheduler.view_incident", "scheduler.view_alertrule"))
    page = viewer.get(INCIDENTS)
    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action is offered to them

    for action in ("acknowledge", "silence_1h", "resolve"):
        act(viewer, action, incident, post="yes", note="sneaky")

    incident.refresh_from_db()
    assert (incident.acknowledged_at, incident.silenced_until, incident.resolved_at) == (
        None,
        None,
        None,
    )
    assert trail(incident) == []


def test_staff_with_manage_alerts_may_acknowledge(incident):
    manager = user_with("scheduler.view_incident", "scheduler.manage_alerts")

    act(client_for(manager), "acknowledge", incident, post="yes", note="mine")

    incident.refresh_from_db()
    assert (incident.acknowledged_by, incident.acknowledge_note) == (manager, "mine")


# --- read-only pages ---------------------------------------------------------------------------


def test_an_incident_page_is_read_only_with_details_and_deliveries(admin_client, incident):
    url = reverse("admin:scheduler_incident_change", args=[incident.pk])

    page = admin_client.get(url)

    text = page.content.decode()
    assert page.status_code == 200
    assert '<pre class="scheduler-details">{\n  &quot;error&quot;: &quot;boom&quot;' in text
    delivery = NotificationDelivery.objects.get()
    assert reverse("admin:scheduler_notificationdelivery_change", args=[delivery.pk]) in text
    assert 'name="_save"' not in text
    assert admin_client.post(url, {"title": "changed"}).status_code == 403
    assert admin_client.get(reverse("admin:scheduler_incident_add")).status_code == 403
    assert Incident.objects.get().title == incident.title


def test_the_delivery_log_is_read_only(admin_client, incident):
    delivery = NotificationDelivery.objects.get()
    change = reverse("admin:scheduler_notificationdelivery_change", args=[delivery.pk])

    listed = admin_client.get(DELIVERIES, {"status__exact": "sent", "q": "nightly"})
    shown = admin_client.get(change)

    assert list(listed.context["cl"].result_list) == [delivery]
    assert reverse("admin:scheduler_incident_change", args=[incident.pk]) in (
        listed.content.decode()
    )
    assert shown.status_code == 200
    assert 'name="_save"' not in shown.content.decode()
    assert admin_client.post(change, {"status": "failed"}).status_code == 403
    assert admin_client.get(reverse("admin:scheduler_notificationdelivery_add")).status_code == 403
    delete = reverse("admin:scheduler_notificationdelivery_delete", args=[delivery.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert NotificationDelivery.objects.get().status == "sent"
