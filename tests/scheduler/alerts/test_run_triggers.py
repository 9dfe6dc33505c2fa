"""The rules that read runs: each trigger against the events that open, attach to and close
its incident, one "down" and one "recovered" notification per incident."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.models import AlertChannel, Incident, NotificationDelivery
from scheduler.services import schedule_create
from scheduler.services.incidents import alert_event
from tests.factories import event_payload_of, make_agent, make_channel, make_rule

pytestmark = pytest.mark.django_db(transaction=True)


def failed(name: str = "nightly", **fields: Any) -> Any:
    return event_payload_of(
        type="task.failed",
        state="FAILURE",
        periodic_task_name=name,
        task_name="scheduler.ping",
        message="RuntimeError: boom",
        **fields,
    )


def succeeded(name: str = "nightly", **fields: Any) -> Any:
    return event_payload_of(
        type="task.succeeded",
        state="SUCCESS",
        periodic_task_name=name,
        task_name="scheduler.ping",
        **fields,
    )


def kinds(sent: list[Any]) -> list[str]:
    return [notification.kind for _, notification in sent]


def test_a_failure_opens_one_incident_and_one_notification(recording_channels: list[Any]) -> None:
    make_channel()
    rule = make_rule()
    alert_event(failed(task_id="t1"))
    alert_event(failed(task_id="t2"))
    alert_event(failed(task_id="t3"))
    incident = Incident.objects.get()
    assert (incident.rule, incident.subject, incident.match_count) == (rule, "schedule:nightly", 3)
    assert incident.details["task_id"] == "t3"
    assert incident.details["error"] == "RuntimeError: boom"
    assert kinds(recording_channels) == ["down"]
    assert recording_channels[0][1].subject == "[DOWN] schedule 'nightly' failed"


def test_the_first_success_closes_it_naming_how_long_it_lasted(
    recording_channels: list[Any],
) -> None:
    make_channel()
    make_rule()
    alert_event(failed())
    alert_event(succeeded(task_id="t9"))
    alert_event(succeeded())
    incident = Incident.objects.get()
    assert incident.resolved_at is not None
    assert kinds(recording_channels) == ["down", "recovered"]
    recovered = recording_channels[1][1]
    assert recovered.subject == "[RECOVERED] schedule 'nightly' failed"
    assert "Recovered after" in recovered.message
    assert recovered.incident["resolved_at"] is not None
    # A later failure is a new incident, told again.
    alert_event(failed())
    assert Incident.objects.filter(resolved_at__isnull=True).count() == 1
    assert kinds(recording_channels) == ["down", "recovered", "down"]


def test_n_consecutive_failures(recording_channels: list[Any]) -> None:
    make_channel()
    make_rule("streak", "consecutive_failures", threshold=3)
    alert_event(failed())
    alert_event(failed())
    alert_event(succeeded())  # breaks the streak
    alert_event(failed())
    alert_event(failed())
    assert not Incident.objects.exists()
    alert_event(failed())
    incident = Incident.objects.get()
    assert incident.title == "schedule 'nightly' failed 3 times in a row"
    assert kinds(recording_channels) == ["down"]
    alert_event(succeeded())
    assert kinds(recording_channels) == ["down", "recovered"]


def test_a_missed_run_and_its_recovery(recording_channels: list[Any]) -> None:
    make_channel()
    make_rule("missed", "missed")
    alert_event(event_payload_of(type="task.missed", state="MISSED", periodic_task_name="nightly"))
    assert Incident.objects.get().title == "schedule 'nightly' missed a run"
    alert_event(succeeded())
    assert kinds(recording_channels) == ["down", "recovered"]


def test_a_run_longer_than_d(recording_channels: list[Any]) -> None:
    make_channel()
    make_rule("slow", "long_run", duration=60)
    alert_event(succeeded(duration=30.0))
    assert not Incident.objects.exists()
    alert_event(succeeded(duration=75.0))
    assert Incident.objects.get().title == "schedule 'nightly' ran 1 min 15 s (over 60 s)"
    alert_event(failed(duration=90.0))
    assert Incident.objects.get().match_count == 2
    alert_event(succeeded(duration=2.0))
    assert kinds(recording_channels) == ["down", "recovered"]


@pytest.mark.parametrize(
    ("target_type", "target", "event", "watched"),
    [
        ("schedule", "nightly", {"periodic_task_name": "nightly"}, True),
        ("schedule", "nightly", {"periodic_task_name": "hourly"}, False),
        ("task", "scheduler.sleep", {"task_name": "scheduler.sleep"}, True),
        ("task", "scheduler.sleep", {"task_name": "scheduler.ping"}, False),
    ],
)
def test_a_rule_watches_its_target_only(
    target_type: str, target: str, event: dict[str, Any], watched: bool
) -> None:
    make_channel()
    schedule_create(name="nightly", task="scheduler.ping", schedule="every day at 3am")
    make_rule(target_type=target_type, target=target)
    fields = {"periodic_task_name": "", "task_name": "scheduler.ping", **event}
    alert_event(event_payload_of(type="task.failed", state="FAILURE", **fields))
    assert Incident.objects.exists() is watched


def test_an_agents_rule_watches_the_runs_its_object_header_names() -> None:
    agent = make_agent("Scout")
    make_channel()
    make_rule(target_type="agent", target=agent.slug)
    alert_event(failed(object=("agent", agent.pk + 1)))
    assert not Incident.objects.exists()
    alert_event(failed(object=("agent", agent.pk)))
    incident = Incident.objects.get()
    assert (incident.object_type, incident.object_id) == ("agent", str(agent.pk))


def test_each_delivery_is_logged() -> None:
    make_channel()
    make_channel("broken", fail="refuse")
    make_rule(channels=("ops", "broken"))
    alert_event(failed())
    rows = {row.channel.name: row for row in NotificationDelivery.objects.all()}
    assert rows["ops"].status == "sent"
    assert (rows["ops"].response_code, rows["ops"].attempts) == (200, 1)
    assert rows["broken"].status == "failed"
    assert rows["broken"].response_code == 404
    assert "404" in rows["broken"].error


def test_disabled_rules_and_channels_are_quiet(recording_channels: list[Any]) -> None:
    make_channel()
    make_channel("off").__class__.objects.filter(name="off").update(enabled=False)
    make_rule(channels=("off",))
    make_rule("disabled", enabled=False)
    alert_event(failed())
    assert Incident.objects.count() == 1
    assert recording_channels == []


def test_a_channel_whose_kind_left_the_registry_fails_alone(settings: Any) -> None:
    make_channel()
    make_channel("gone")
    make_rule(channels=("ops", "gone"))
    settings.SCHEDULER_ALERT_CHANNEL_KINDS = {
        "record": settings.SCHEDULER_ALERT_CHANNEL_KINDS["record"]
    }
    AlertChannel.objects.filter(name="gone").update(kind="pager")
    alert_event(failed())
    assert Incident.objects.count() == 1
    rows = {row.channel.name: row for row in NotificationDelivery.objects.all()}
    assert rows["ops"].status == "sent"
    assert rows["gone"].status == "failed"
    assert "unknown channel kind 'pager'" in rows["gone"].error
