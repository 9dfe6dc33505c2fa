"""The REST API of incidents (`/api/incidents/`): the list (open ones first, search, pages by
cursor), one incident with its deliveries, and acknowledging, silencing and resolving it (through
the services, audited; `scheduler.manage_alerts` only; 409 once it is resolved)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler.models import AuditEntry, Incident, TaskEvent
from scheduler.services.incidents import incident_recover
from tests.alert_setup import alerting
from tests.clients import api_client, response_json
from tests.factories import make_channel, make_incident, make_rule, user_with
from tests.scheduler.api.alert_helpers import recording

pytestmark = pytest.mark.django_db

__all__ = ["alerting", "recording"]

VIEW_DASHBOARD = "scheduler.view_dashboard"
MANAGE_ALERTS = "scheduler.manage_alerts"
START = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def _history() -> dict[str, Incident]:
    """Two open incidents and three resolved ones, each opened an hour after the one before."""
    rule = make_rule(channels=())
    other = make_rule("queues", "no_worker", duration=60, channels=())
    made: dict[str, Incident] = {}
    for k, (name, rule_of) in enumerate(
        [("old-a", rule), ("old-b", other), ("old-c", rule), ("open-a", other), ("open-b", rule)]
    ):
        kind = "queue" if rule_of is other else "schedule"
        made[name] = make_incident(
            rule_of, f"{kind}:{name}", f"{kind} {name} is down", at=START + timedelta(hours=k)
        )
        if name.startswith("old"):
            incident_recover([rule_of], f"{kind}:{name}", now=START + timedelta(hours=k, minutes=5))
    return made


def _ids(data: dict[str, Any]) -> list[int]:
    return [row["id"] for row in data["results"]]


# --- Reading -------------------------------------------------------------------------------


def test_it_lists_open_incidents_first_then_the_latest(api_admin: APIClient) -> None:
    made = _history()

    data = response_json(api_admin.get("/api/incidents/"))

    names = ["open-b", "open-a", "old-c", "old-b", "old-a"]
    assert _ids(data) == [made[name].pk for name in names]
    assert data["next"] is None
    assert data["open_count"] == 2
    first = data["results"][0]
    assert first["status"] == "open"
    assert first["rule"] == "failures"
    assert first["trigger"] == "failed"
    assert first["subject"] == "schedule:open-b"
    assert first["match_count"] == 1
    assert first["acknowledged_by"] is None
    assert first["url"] == f"http://testserver/api/incidents/{made['open-b'].pk}/"
    assert data["results"][2]["status"] == "resolved"


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=open", ["open-b", "open-a"]),
        ("status=resolved", ["old-c", "old-b", "old-a"]),
        ("status=all&rule=queues", ["open-a", "old-b"]),
        ("q=QUEUE", ["open-a", "old-b"]),
        ("q=old-c", ["old-c"]),
        ("q=failures&status=resolved", ["old-c", "old-a"]),
        ("q=nothing+like+it", []),
        ("rule=ghost", []),
    ],
)
def test_it_filters_and_searches(api_admin: APIClient, query: str, names: list[str]) -> None:
    made = _history()

    data = response_json(api_admin.get(f"/api/incidents/?{query}"))

    assert _ids(data) == [made[name].pk for name in names]


@pytest.mark.parametrize("status", ["", "all", "resolved"])
def test_it_pages_by_cursor_through_every_incident_once(api_admin: APIClient, status: str) -> None:
    made = _history()
    expected = [
        made[name].pk
        for name in ["open-b", "open-a", "old-c", "old-b", "old-a"]
        if status != "resolved" or name.startswith("old")
    ]
    seen: list[int] = []
    url: str | None = f"/api/incidents/?status={status}&page_size=2"
    pages = 0
    while url and pages < 10:
        data = response_json(api_admin.get(url))
        seen += _ids(data)
        url = data["next"]
        pages += 1

    assert seen == expected
    assert pages == -(-len(expected) // 2)


def test_incidents_opened_at_the_same_instant_are_each_paged_once(api_admin: APIClient) -> None:
    rule = make_rule(channels=())
    made = [make_incident(rule, f"schedule:s{k}", f"s{k} failed", at=START) for k in range(5)]
    seen: list[int] = []
    url: str | None = "/api/incidents/?page_size=2"
    while url and len(seen) < 10:
        data = response_json(api_admin.get(url))
        seen += _ids(data)
        url = data["next"]

    assert seen == sorted((incident.pk for incident in made), reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=closed", "status"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=" + "a" * 300, "cursor"),
        ("page_size=0", "page_size"),
        ("page_size=201", "page_size"),
        ("page_size=" + "9" * 30, "page_size"),
        ("q=" + "a" * 201, "q"),
    ],
)
def test_it_refuses_a_bad_query(api_admin: APIClient, query: str, field: str) -> None:
    response = api_admin.get(f"/api/incidents/?{query}")

    assert response.status_code == 400
    assert field in response_json(response)


def test_it_shows_one_incident_with_its_deliveries(
    api_admin: APIClient, recording: list[Any]
) -> None:
    make_channel("ops")
    incident = make_incident(make_rule(), object=("agent", "3"))

    data = response_json(api_admin.get(f"/api/incidents/{incident.pk}/"))

    assert data["id"] == incident.pk
    assert data["title"] == "schedule 'nightly' failed"
    assert data["details"] == {"error": "boom"}
    assert data["object"] == {"type": "agent", "id": "3"}
    assert [(d["channel"], d["kind"]) for d in data["deliveries"]] == [("ops", "down")]


@pytest.mark.parametrize("path", ["999999/", "99999999999999999999/", "x/", "-1/"])
def test_it_answers_404_for_an_unknown_incident(api_admin: APIClient, path: str) -> None:
    for response in (
        api_admin.get(f"/api/incidents/{path}"),
        api_admin.post(f"/api/incidents/{path}acknowledge/", {}, format="json"),
        api_admin.post(f"/api/incidents/{path}silence/", {"for": 60}, format="json"),
        api_admin.post(f"/api/incidents/{path}resolve/"),
    ):
        assert response.status_code == 404
        assert response_json(response)["detail"]


# --- Acting on one -------------------------------------------------------------------------


def test_it_acknowledges_with_a_note_and_audits_it() -> None:
    user = user_with(MANAGE_ALERTS, VIEW_DASHBOARD)
    incident = make_incident(make_rule(channels=()))

    response = api_client(user).post(
        f"/api/incidents/{incident.pk}/acknowledge/", {"note": "on it"}, format="json"
    )

    assert response.status_code == 200, response.content
    data = response_json(response)
    assert data["acknowledged_by"] == user.get_username()
    assert data["acknowledge_note"] == "on it"
    assert data["acknowledged_at"] is not None
    entry = AuditEntry.objects.get(periodic_task_name=f"incident {incident.pk}")
    assert (entry.action, entry.source, entry.actor) == ("acknowledged", "api", user)


def test_it_silences_for_a_while_until_a_time_and_lifts_it(api_admin: APIClient) -> None:
    incident = make_incident(make_rule(channels=()))
    url = f"/api/incidents/{incident.pk}/silence/"
    before = timezone.now()

    paris = (before + timedelta(days=2)).astimezone(ZoneInfo("Europe/Paris")).replace(microsecond=0)

    for_an_hour = response_json(api_admin.post(url, {"for": 3600}, format="json"))
    until = response_json(api_admin.post(url, {"until": paris.isoformat()}, format="json"))
    lifted = api_admin.post(url, {"until": None}, format="json")

    silenced = datetime.fromisoformat(for_an_hour["silenced_until"])
    assert timedelta(minutes=59) < silenced - before < timedelta(minutes=61)
    assert datetime.fromisoformat(until["silenced_until"]) == paris
    assert lifted.status_code == 200
    assert response_json(lifted)["silenced_until"] is None
    incident.refresh_from_db()
    assert incident.silenced_until is None
    assert AuditEntry.objects.filter(action="silenced").count() == 3


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"until": "tomorrow"}, "until", "not an ISO 8601 date-time"),
        ({"until": "2001-01-01T00:00:00+00:00"}, "until", "must be in the future"),
        ({"until": "9999-12-31T23:59:59-05:00"}, "until", "outside the calendar"),
        ({"until": "2999-01-01T00:00:00+00:00"}, "until", "at most"),
        ({"until": 12}, "until", "not an ISO 8601 date-time"),
        ({"until": ["2030-01-01"]}, "until", "valid string"),
        ({"for": 0}, "for", "greater than or equal to 1"),
        ({"for": -60}, "for", "greater than or equal to 1"),
        ({"for": "an hour"}, "for", "valid integer"),
        ({"for": 10**12}, "for", "less than or equal to"),
        ({}, "body", 'give "until"'),
        ({"until": None, "for": 60}, "body", 'give "until"'),
        ({"forever": True}, "forever", "is not a field of this request"),
    ],
)
def test_it_refuses_a_bad_silence(
    api_admin: APIClient, body: dict[str, Any], field: str, message: str
) -> None:
    incident = make_incident(make_rule(channels=()))

    response = api_admin.post(f"/api/incidents/{incident.pk}/silence/", body, format="json")

    assert response.status_code == 400, response.content
    assert message in " ".join(response_json(response)[field])
    incident.refresh_from_db()
    assert incident.silenced_until is None
    assert not AuditEntry.objects.filter(action="silenced").exists()


def test_it_resolves_by_hand_with_the_event_of_its_recovery(api_admin: APIClient) -> None:
    incident = make_incident(make_rule(channels=()))

    response = api_admin.post(f"/api/incidents/{incident.pk}/resolve/")

    assert response.status_code == 200, response.content
    data = response_json(response)
    assert data["status"] == "resolved"
    assert data["resolved_at"] is not None
    event = TaskEvent.objects.get(type="incident.resolved")
    assert event.payload["incident"] == incident.pk
    assert "closed via api" in event.message


@pytest.mark.parametrize(
    ("action", "body"),
    [("acknowledge", {"note": "late"}), ("silence", {"for": 60}), ("resolve", None)],
)
def test_it_answers_409_on_a_resolved_incident(
    api_admin: APIClient, action: str, body: Any
) -> None:
    rule = make_rule(channels=())
    incident = make_incident(rule)
    incident_recover([rule], incident.subject)

    response = api_admin.post(f"/api/incidents/{incident.pk}/{action}/", body, format="json")

    assert response.status_code == 409
    assert response_json(response)["detail"] == f"incident {incident.pk} is already resolved"
    incident.refresh_from_db()
    assert (incident.acknowledged_at, incident.silenced_until) == (None, None)


def test_it_refuses_a_body_that_is_not_json(api_admin: APIClient) -> None:
    incident = make_incident(make_rule(channels=()))
    url = f"/api/incidents/{incident.pk}/acknowledge/"

    malformed = api_admin.generic("POST", url, '{"note": ', "application/json")
    listed = api_admin.generic("POST", url, '["on it"]', "application/json")
    wrong_type = api_admin.post(url, {"note": ["on", "it"]}, format="json")

    assert malformed.status_code == 400
    assert "JSON parse error" in response_json(malformed)["body"][0]
    assert listed.status_code == 400
    assert "body" in response_json(listed)
    assert wrong_type.status_code == 400
    assert "note" in response_json(wrong_type)
    incident.refresh_from_db()
    assert incident.acknowledged_at is None


# --- Who may call ---------------------------------------------------------------------------


def test_it_refuses_anonymous_callers_and_staff_without_the_permission() -> None:
    incident = make_incident(make_rule(channels=()))
    anonymous = APIClient()
    no_permission = api_client(user_with())
    watcher = api_client(user_with(VIEW_DASHBOARD))
    actions = [("acknowledge", {"note": "x"}), ("silence", {"for": 60}), ("resolve", {})]

    assert anonymous.get("/api/incidents/").status_code == 401
    assert no_permission.get("/api/incidents/").status_code == 403
    assert no_permission.get(f"/api/incidents/{incident.pk}/").status_code == 403
    assert watcher.get(f"/api/incidents/{incident.pk}/").status_code == 200
    for action, body in actions:
        url = f"/api/incidents/{incident.pk}/{action}/"
        assert anonymous.post(url, body, format="json").status_code == 401
        refused = watcher.post(url, body, format="json")
        assert refused.status_code == 403
        assert response_json(refused)["detail"] == f"permission required: {MANAGE_ALERTS}"
    incident.refresh_from_db()
    assert incident.is_open
    assert (incident.acknowledged_at, incident.silenced_until) == (None, None)
