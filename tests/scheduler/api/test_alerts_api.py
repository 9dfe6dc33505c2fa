"""The REST API of alert rules, channels and the notification log (`/api/alerts/`): through the
alert services (their messages, their audit trail), bad input answered 400 naming the field and
saving nothing, unknown names 404, and who may read and write."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from scheduler.models import AlertChannel, AlertRule, AuditEntry, NotificationDelivery
from tests.alert_setup import alerting
from tests.clients import api_client, response_json
from tests.factories import make_channel, make_incident, make_rule, make_schedule, user_with
from tests.scheduler.api.alert_helpers import recording

pytestmark = pytest.mark.django_db

__all__ = ["alerting", "recording"]

RULE_FIELDS = {
    "name",
    "enabled",
    "trigger",
    "target_type",
    "target",
    "threshold",
    "duration",
    "channels",
    "repeat_interval",
    "quiet_start",
    "quiet_end",
    "quiet_timezone",
    "description",
    "url",
}
VIEW_DASHBOARD = "scheduler.view_dashboard"


# --- Rules ---------------------------------------------------------------------------------


def test_it_creates_a_rule_through_the_service(recording: list[Any]) -> None:
    make_channel("ops")
    make_schedule(name="nightly")
    user = user_with(superuser=True)
    body = {
        "name": "nightly streak",
        "trigger": "consecutive_failures",
        "target_type": "schedule",
        "target": "nightly",
        "threshold": 3,
        "channels": ["ops"],
        "repeat_interval": 600,
        "quiet_start": "22:00",
        "quiet_end": "07:00",
        "quiet_timezone": "Europe/Paris",
        "description": "three in a row",
    }

    response = api_client(user).post("/api/alerts/rules/", body, format="json")

    assert response.status_code == 201, response.content
    data = response_json(response)
    assert set(data) == RULE_FIELDS
    assert (
        response["Location"]
        == data["url"]
        == "http://testserver/api/alerts/rules/nightly%20streak/"
    )
    assert data["threshold"] == 3
    assert data["channels"] == ["ops"]
    assert (data["quiet_start"], data["quiet_end"]) == ("22:00:00", "07:00:00")
    rule = AlertRule.objects.get(name="nightly streak")
    assert rule.target_key == "nightly"
    entry = AuditEntry.objects.get(periodic_task_name="rule nightly streak")
    assert (entry.action, entry.source, entry.actor) == ("created", "api", user)


def test_it_lists_and_shows_rules(api_admin: APIClient, recording: list[Any]) -> None:
    make_channel("ops")
    make_rule("b failures")
    make_rule("a failures", channels=())

    listed = response_json(api_admin.get("/api/alerts/rules/"))
    shown = response_json(api_admin.get("/api/alerts/rules/b%20failures/"))

    assert listed["count"] == 2
    assert [rule["name"] for rule in listed["results"]] == ["a failures", "b failures"]
    assert shown["channels"] == ["ops"]
    assert shown["trigger"] == "failed"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"target_type": "schedule", "target": "ghost"}, "target", "no periodic task named"),
        ({"target_type": "agent", "target": "nobody"}, "target", "no agent with the slug"),
        ({"trigger": "consecutive_failures", "threshold": 0}, "threshold", "positive"),
        ({"trigger": "consecutive_failures", "threshold": -1}, "threshold", "positive"),
        ({"trigger": "long_run", "duration": 0}, "duration", "positive"),
        ({"trigger": "sometimes"}, "trigger", "unknown trigger 'sometimes'"),
        ({"channels": ["ghost"]}, "channels", "no channel named ghost"),
        ({"quiet_timezone": "America"}, "quiet_timezone", "unknown zone"),
        ({"quiet_start": "22:00"}, "quiet_start", "both ends"),
        ({"threshold": "many"}, "threshold", "valid integer"),
        ({"channels": "ops"}, "channels", "list"),
        ({"enabled": "perhaps"}, "enabled", "valid boolean"),
        ({"quiet_start": "late"}, "quiet_start", "Time has wrong format"),
        ({"color": "red"}, "color", "is not a field of this request"),
        ({"name": ""}, "name", "needs a name"),
        ({"name": "x" * 101}, "name", "at most 100"),
    ],
)
def test_it_refuses_a_bad_rule_naming_the_field(
    api_admin: APIClient, body: dict[str, Any], field: str, message: str
) -> None:
    response = api_admin.post(
        "/api/alerts/rules/", {"name": "r", "trigger": "failed", **body}, format="json"
    )

    assert response.status_code == 400, response.content
    errors = response_json(response)
    assert message in " ".join(errors[field]), errors
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"name": "r", "trigger": ', "application/json"),
        ('["a", "list"]', "application/json"),
        ("name=r", "application/x-www-form-urlencoded"),
    ],
)
def test_it_refuses_a_body_that_is_not_a_json_object(
    api_admin: APIClient, content: str, content_type: str
) -> None:
    response = api_admin.generic("POST", "/api/alerts/rules/", content, content_type)

    assert response.status_code in (400, 415)
    assert response_json(response)
    assert not AlertRule.objects.exists()


def test_it_refuses_a_second_rule_of_the_same_name(api_admin: APIClient) -> None:
    make_rule(channels=())

    response = api_admin.post(
        "/api/alerts/rules/", {"name": "failures", "trigger": "failed"}, format="json"
    )

    assert response.status_code == 400
    assert "exists" in response_json(response)["name"][0]


def test_put_and_patch_keep_the_fields_left_out(api_admin: APIClient, recording: list[Any]) -> None:
    make_channel("ops")
    make_rule("streak", "consecutive_failures", threshold=3, description="keep me")
    url = "/api/alerts/rules/streak/"

    patched = api_admin.patch(url, {"threshold": 5}, format="json")
    put = api_admin.put(url, {"trigger": "failed", "name": "streak"}, format="json")

    assert patched.status_code == 200, patched.content
    assert response_json(patched)["threshold"] == 5
    assert response_json(patched)["description"] == "keep me"
    assert put.status_code == 200, put.content
    data = response_json(put)
    assert (data["trigger"], data["threshold"]) == ("failed", None)
    assert (data["description"], data["channels"]) == ("keep me", ["ops"])
    changes = AuditEntry.objects.filter(periodic_task_name="rule streak", action="updated")
    assert changes.count() == 2


def test_an_update_refuses_what_would_be_wrong_and_changes_nothing(api_admin: APIClient) -> None:
    make_rule("streak", "consecutive_failures", threshold=3, channels=())
    url = "/api/alerts/rules/streak/"

    no_trigger = api_admin.put(url, {"threshold": 4}, format="json")
    renamed = api_admin.patch(url, {"name": "other"}, format="json")
    zero = api_admin.patch(url, {"threshold": 0}, format="json")

    assert no_trigger.status_code == 400
    assert "trigger" in response_json(no_trigger)
    assert renamed.status_code == 400
    assert "the URL's" in response_json(renamed)["name"][0]
    assert zero.status_code == 400
    assert "positive" in response_json(zero)["threshold"][0]
    assert AlertRule.objects.get().threshold == 3
    assert not AlertRule.objects.filter(name="other").exists()


def test_it_deletes_a_rule_and_answers_404_for_an_unknown_one(api_admin: APIClient) -> None:
    make_rule(channels=())

    deleted = api_admin.delete("/api/alerts/rules/failures/")
    again = api_admin.delete("/api/alerts/rules/failures/")
    shown = api_admin.get("/api/alerts/rules/failures/")
    changed = api_admin.patch("/api/alerts/rules/ghost/", {"enabled": False}, format="json")

    assert deleted.status_code == 204
    assert not AlertRule.objects.exists()
    for response, name in ((again, "failures"), (shown, "failures"), (changed, "ghost")):
        assert response.status_code == 404
        assert response_json(response)["detail"] == f"no rule {name!r}"
    entry = AuditEntry.objects.get(periodic_task_name="rule failures", action="deleted")
    assert entry.source == "api"


# --- Channels ------------------------------------------------------------------------------


def test_it_creates_changes_and_deletes_a_channel(
    api_admin: APIClient, recording: list[Any]
) -> None:
    created = api_admin.post(
        "/api/alerts/channels/", {"name": "ops", "kind": "record", "config": {}}, format="json"
    )
    changed = api_admin.put(
        "/api/alerts/channels/ops/", {"kind": "record", "config": {"tag": "x"}}, format="json"
    )
    listed = response_json(api_admin.get("/api/alerts/channels/"))
    deleted = api_admin.delete("/api/alerts/channels/ops/")

    assert created.status_code == 201, created.content
    assert created["Location"] == "http://testserver/api/alerts/channels/ops/"
    assert set(response_json(created)) == {
        "name",
        "kind",
        "config",
        "enabled",
        "created_at",
        "updated_at",
        "url",
    }
    assert changed.status_code == 200, changed.content
    assert response_json(changed)["config"] == {"tag": "x"}
    assert response_json(changed)["enabled"] is True
    assert [channel["name"] for channel in listed["results"]] == ["ops"]
    assert deleted.status_code == 204
    assert not AlertChannel.objects.exists()
    actions = AuditEntry.objects.filter(periodic_task_name="channel ops").values_list(
        "action", flat=True
    )
    assert sorted(actions) == ["created", "deleted", "updated"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "carrier-pigeon"}, "kind", "unknown channel kind 'carrier-pigeon'"),
        ({"kind": "record", "config": {"colour": "red"}}, "config", "colour: unknown setting"),
        ({"kind": "record", "config": ["a"]}, "config", "must be a JSON object"),
        ({"kind": "record", "enabled": "sometimes"}, "enabled", "valid boolean"),
        ({"kind": "record", "name": " "}, "name", "needs a name"),
        ({"config": {}}, "kind", "required"),
    ],
)
def test_it_refuses_a_bad_channel_naming_the_field(
    api_admin: APIClient, recording: list[Any], body: dict[str, Any], field: str, message: str
) -> None:
    response = api_admin.post("/api/alerts/channels/", {"name": "ops", **body}, format="json")

    assert response.status_code == 400, response.content
    assert message in " ".join(response_json(response)[field])
    assert not AlertChannel.objects.exists()


def test_it_sends_a_test_notification_and_audits_it(
    api_admin: APIClient, recording: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    make_channel("ops")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post("/api/alerts/channels/ops/test/")

    assert response.status_code == 202, response.content
    data = response_json(response)
    delivery = NotificationDelivery.objects.get()
    assert data["delivery_id"] == delivery.pk
    assert data["channel"] == "ops"
    assert delivery.kind == "test"
    assert [notification.kind for _, notification in recording] == ["test"]
    entry = AuditEntry.objects.get(periodic_task_name="channel ops", action="tested")
    assert entry.source == "api"
    assert entry.changes == {"delivery": [None, delivery.pk]}


def test_it_answers_404_for_an_unknown_channel(api_admin: APIClient) -> None:
    for response in (
        api_admin.post("/api/alerts/channels/ghost/test/"),
        api_admin.get("/api/alerts/channels/ghost/"),
        api_admin.put("/api/alerts/channels/ghost/", {"kind": "record"}, format="json"),
        api_admin.delete("/api/alerts/channels/ghost/"),
    ):
        assert response.status_code == 404, response.content
        assert "ghost" in response_json(response)["detail"]
    assert not NotificationDelivery.objects.exists()
    assert not AuditEntry.objects.exists()


# --- The notification log -------------------------------------------------------------------


def test_it_lists_deliveries_newest_first_with_filters(
    api_admin: APIClient, recording: list[Any]
) -> None:
    make_channel("ops")
    make_channel("pager")
    rule = make_rule(channels=("ops", "pager"))
    incident = make_incident(rule)
    other = make_incident(rule, "schedule:weekly")
    for channel in AlertChannel.objects.all():
        api_admin.post(f"/api/alerts/channels/{channel.name}/test/")

    everything = response_json(api_admin.get("/api/alerts/deliveries/"))
    by_channel = response_json(api_admin.get("/api/alerts/deliveries/?channel=pager&kind=down"))
    by_incident = response_json(api_admin.get(f"/api/alerts/deliveries/?incident={incident.pk}"))
    tests = response_json(api_admin.get("/api/alerts/deliveries/?kind=test&status=pending"))

    assert everything["count"] == 6
    ids = [row["id"] for row in everything["results"]]
    assert ids == sorted(ids, reverse=True)
    assert {(row["channel"], row["incident"]) for row in by_channel["results"]} == {
        ("pager", incident.pk),
        ("pager", other.pk),
    }
    assert {row["incident"] for row in by_incident["results"]} == {incident.pk}
    assert by_incident["count"] == 2
    assert {row["channel"] for row in tests["results"]} == {"ops", "pager"}
    assert all(row["incident"] is None for row in tests["results"])


@pytest.mark.parametrize(
    "query", ["status=lost", "kind=sideways", "incident=0", "incident=x", f"incident={'9' * 30}"]
)
def test_it_refuses_a_bad_filter_of_the_log(api_admin: APIClient, query: str) -> None:
    response = api_admin.get(f"/api/alerts/deliveries/?{query}")

    assert response.status_code == 400
    assert query.split("=")[0] in response_json(response)


# --- Who may call ---------------------------------------------------------------------------


ENDPOINTS: list[tuple[str, str, Any]] = [
    ("get", "/api/alerts/rules/", None),
    ("post", "/api/alerts/rules/", {"name": "x", "trigger": "failed"}),
    ("get", "/api/alerts/rules/failures/", None),
    ("put", "/api/alerts/rules/failures/", {"trigger": "failed"}),
    ("patch", "/api/alerts/rules/failures/", {"enabled": False}),
    ("delete", "/api/alerts/rules/failures/", None),
    ("get", "/api/alerts/channels/", None),
    ("post", "/api/alerts/channels/", {"name": "x", "kind": "record"}),
    ("get", "/api/alerts/channels/ops/", None),
    ("put", "/api/alerts/channels/ops/", {"kind": "record"}),
    ("delete", "/api/alerts/channels/ops/", None),
    ("post", "/api/alerts/channels/ops/test/", None),
    ("get", "/api/alerts/deliveries/", None),
]


def _call(client: APIClient, method: str, path: str, body: Any) -> Any:
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize(
    ("who", "code"),
    [("anonymous", 401), ("not staff", 403), ("staff without permissions", 403)],
)
def test_it_refuses_whoever_may_not_call(recording: list[Any], who: str, code: int) -> None:
    make_channel("ops")
    make_rule(channels=("ops",))
    client = {
        "anonymous": APIClient(),
        "not staff": api_client(user_with(VIEW_DASHBOARD, staff=False)),
        "staff without permissions": api_client(user_with()),
    }[who]

    for method, path, body in ENDPOINTS:
        response = _call(client, method, path, body)
        assert response.status_code == code, (method, path, response.content)
        assert response_json(response)["detail"]
    assert AlertRule.objects.get().enabled
    assert AlertChannel.objects.count() == 1
    assert not NotificationDelivery.objects.exists()


def test_watchers_read_and_writers_need_the_model_permission(recording: list[Any]) -> None:
    make_channel("ops")
    make_rule(channels=("ops",))
    watcher = api_client(user_with(VIEW_DASHBOARD))
    editor = api_client(user_with(VIEW_DASHBOARD, "scheduler.change_alertrule"))

    for method, path, body in ENDPOINTS:
        response = _call(watcher, method, path, body)
        expected = 200 if method == "get" else 403
        assert response.status_code == expected, (method, path, response.content)
    refused = _call(editor, "delete", "/api/alerts/rules/failures/", None)
    changed = _call(editor, "patch", "/api/alerts/rules/failures/", {"enabled": False})

    assert refused.status_code == 403
    assert "scheduler.delete_alertrule" in response_json(refused)["detail"]
    assert changed.status_code == 200
    assert AlertRule.objects.get().enabled is False
