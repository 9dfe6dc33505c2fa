"""`manage.py scheduler incidents`: incidents listed open first (as a table and as JSON), one
shown with its notifications, and acknowledged, silenced and resolved through the services
(audited with source cli); bad input as one line, a non-zero exit and nothing changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management.base import CommandError

from scheduler.models import AuditEntry, Incident
from tests.alert_setup import alerting, open_incident
from tests.factories import make_channel, make_rule
from tests.scheduler.cli.helpers import scheduler, scheduler_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("alerting")]
__all__ = ["alerting"]

NOON = datetime(2030, 6, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def incidents(django_capture_on_commit_callbacks) -> list[Incident]:
    """Open: nightly (told to "ops"), worker; resolved: an older one of the rule "failures"."""
    make_channel("ops")
    failures = make_rule("failures")
    with time_machine.travel(NOON - timedelta(days=1), tick=False):
        old = open_incident(failures, "schedule:weekly", title="schedule 'weekly' failed")
        Incident.objects.filter(pk=old.pk).update(resolved_at=NOON - timedelta(hours=20))
    with time_machine.travel(NOON, tick=False), django_capture_on_commit_callbacks(execute=True):
        nightly = open_incident(failures, details={"error": "boom", "task_id": "t-1"})
    with time_machine.travel(NOON + timedelta(minutes=5), tick=False):
        worker = open_incident(
            make_rule("workers", "no_worker", duration=60, channels=()),
            "queue:default",
            title="queue 'default' has no worker",
        )
    return [nightly, worker, old]


def trail(incident: Incident) -> list[tuple[str, str]]:
    entries = AuditEntry.objects.filter(periodic_task_name=f"incident {incident.pk}")
    return list(entries.order_by("id").values_list("action", "source"))


# --- listing -----------------------------------------------------------------------------------


def test_incidents_lists_the_open_ones_newest_first(incidents):
    nightly, worker, _ = incidents

    lines = scheduler("incidents", "--tz", "UTC").splitlines()

    assert lines[0].split() == [
        *("ID", "STATUS", "OPENED", "LASTED", "MATCHES", "RULE", "TITLE", "ACK", "BY"),
    ]
    assert [line.split()[:2] for line in lines[1:]] == [
        [str(worker.pk), "open"],
        [str(nightly.pk), "open"],
    ]
    assert "2030-06-03 12:00:00 UTC" in lines[2]
    assert "schedule 'nightly' failed" in lines[2]


def test_incidents_all_puts_the_resolved_ones_after_the_open(incidents):
    rows = scheduler_json("incidents", "--all", "--json")

    assert [row["id"] for row in rows] == [incidents[1].pk, incidents[0].pk, incidents[2].pk]
    assert [row["status"] for row in rows] == ["open", "open", "resolved"]
    old = rows[2]
    assert old["duration_seconds"] == 4 * 3600
    assert (old["rule"], old["trigger"], old["subject"]) == (
        "failures",
        "failed",
        "schedule:weekly",
    )
    assert old["resolved_at"] == "2030-06-02T16:00:00+00:00"


@pytest.mark.parametrize(
    ("argv", "titles"),
    [
        (["--search", "WORKER"], ["queue 'default' has no worker"]),
        (
            ["--rule", "failures", "--all"],
            ["schedule 'nightly' failed", "schedule 'weekly' failed"],
        ),
        (["--open", "--rule", "failures"], ["schedule 'nightly' failed"]),
        (["--all", "--limit", "1"], ["queue 'default' has no worker"]),
        (["--search", "nothing like it"], []),
    ],
)
def test_incidents_filters_and_limits(incidents, argv, titles):
    rows = scheduler_json("incidents", "--json", *argv)

    assert [row["title"] for row in rows] == titles


def test_incidents_says_when_there_are_none(db):
    assert scheduler("incidents").strip() == (
        "No open incidents (--all shows the resolved ones too)."
    )
    assert scheduler("incidents", "--all").strip() == "No incidents."


# --- one incident ------------------------------------------------------------------------------


def test_incidents_show_gives_the_details_and_the_notifications(incidents):
    nightly = incidents[0]

    lines = scheduler("incidents", "show", str(nightly.pk), "--tz", "UTC").splitlines()
    data = scheduler_json("incidents", "show", str(nightly.pk), "--json")

    assert lines[0] == f"Incident {nightly.pk}: schedule 'nightly' failed"
    assert "status:       open" in lines
    assert "rule:         failures (A run failed (after its last retry))" in lines
    assert "opened:       2030-06-03 12:00:00 UTC" in lines
    assert '    "error": "boom",' in lines
    assert lines[-2].split()[:5] == ["ID", "CREATED", "CHANNEL", "KIND", "STATUS"]
    assert lines[-1].split()[4:8] == ["ops", "down", "sent", "1"]
    assert data["details"] == {"error": "boom", "task_id": "t-1"}
    assert [(d["channel"], d["kind"], d["status"]) for d in data["deliveries"]] == [
        ("ops", "down", "sent")
    ]
    assert data["deliveries"][0]["response_code"] == 200


def test_incidents_ack_acknowledges_with_a_note(incidents):
    nightly = incidents[0]

    printed = scheduler("incidents", "ack", str(nightly.pk), "--note", "disk full, on it")

    assert printed.strip() == f"Acknowledged incident {nightly.pk}: schedule 'nightly' failed."
    nightly.refresh_from_db()
    assert nightly.acknowledged_at is not None
    assert nightly.acknowledge_note == "disk full, on it"
    assert trail(nightly) == [("acknowledged", "cli")]
    shown = scheduler_json("incidents", "show", str(nightly.pk), "--json")
    assert (shown["status"], shown["acknowledged_by"]) == ("acknowledged", None)


def test_incidents_silence_for_a_while_until_a_time_and_lift(incidents):
    nightly = incidents[0]
    key = str(nightly.pk)

    with time_machine.travel(NOON, tick=False):
        scheduler("incidents", "silence", key, "--for", "2h")
        nightly.refresh_from_db()
        assert nightly.silenced_until == NOON + timedelta(hours=2)
        printed = scheduler(
            "incidents", "silence", key, "--until", "2030-06-03T15:30", "--tz", "UTC"
        )
        nightly.refresh_from_db()
        assert nightly.silenced_until == NOON + timedelta(hours=3, minutes=30)
        assert printed.strip() == f"Silenced incident {key} until 2030-06-03 15:30:00 UTC."
        assert scheduler_json("incidents", "show", key, "--json")["status"] == "silenced"

    lifted = scheduler("incidents", "silence", key, "--lift")

    nightly.refresh_from_db()
    assert nightly.silenced_until is None
    assert lifted.startswith(f"Lifted the silence of incident {key}")
    assert trail(nightly) == [("silenced", "cli")] * 3


def test_incidents_resolve_closes_it_and_tells_the_recovery(
    incidents, alerting, django_capture_on_commit_callbacks
):
    nightly = incidents[0]

    with django_capture_on_commit_callbacks(execute=True):
        printed = scheduler("incidents", "resolve", str(nightly.pk))

    assert printed.startswith(f"Resolved incident {nightly.pk} after ")
    nightly.refresh_from_db()
    assert nightly.resolved_at is not None
    assert [notification.kind for _, notification in alerting] == ["down", "recovered"]
    assert trail(nightly) == [("updated", "cli")]


# --- bad input ---------------------------------------------------------------------------------

BAD_INPUTS = [
    # (argv, what the message says); {open}/{resolved}: an incident's id
    (["ack", "999"], "no incident 999"),
    (["ack", "{resolved}"], "incident {resolved} is already resolved"),
    (["ack", "abc"], "invalid int value: 'abc'"),
    (["silence", "{open}"], "one of the arguments --for --until --lift is required"),
    (["silence", "{open}", "--for", "soon"], "--for: 'soon' is not a duration"),
    (["silence", "{open}", "--for", "0"], "--for: must be in the future"),
    (["silence", "{open}", "--until", "2001-01-01T00:00"], "--until: must be in the future"),
    (["silence", "{open}", "--until", "tomorrow"], "--until 'tomorrow' is not an ISO 8601"),
    (["silence", "{open}", "--for", "1h", "--lift"], "not allowed with argument"),
    (["silence", "{resolved}", "--lift"], "incident {resolved} is already resolved"),
    (["resolve", "{resolved}"], "incident {resolved} is already resolved"),
    (["resolve", "999"], "no incident 999"),
    (["show", "999"], "no incident 999"),
    (["--limit", "0"], "--limit 0 is out of range 1-10000"),
    (["--rule", "nope"], "--rule: no rule 'nope'"),
    (["--open", "--all"], "not allowed with argument"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_it_refuses_bad_input_with_one_line_and_changes_nothing(incidents, argv, message):
    ids = {"open": incidents[0].pk, "resolved": incidents[2].pk}
    before = list(Incident.objects.order_by("pk").values())
    audited = AuditEntry.objects.count()

    with pytest.raises(CommandError) as error:
        scheduler("incidents", *(arg.format(**ids) for arg in argv))

    assert message.format(**ids) in str(error.value)
    assert "\n" not in str(error.value)
    assert list(Incident.objects.order_by("pk").values()) == before
    assert AuditEntry.objects.count() == audited
