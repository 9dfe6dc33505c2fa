"""Alert channels and rules declared in code and `scheduler sync`: created once (channels
first), code changes applied, staff changes kept as drift until forced, removed declarations
disabled, never deleted; what is wrong is told at start (scheduler.E005) or by sync."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import time
from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError

from scheduler import upkeep
from scheduler.models import AlertChannel, AlertRule, AuditEntry, DeclaredAlert, Source
from scheduler.schedules import (
    AlertDeclarations,
    DeclaredChannel,
    DeclaredRule,
    declared_alerts,
)
from scheduler.schedules.declared_alerts import rule_row_fields
from scheduler.services import RuleInput, channel_save, rule_save
from scheduler.services.declared_alerts import alert_declarations_check, alerts_sync
from tests import alert_kinds

pytestmark = pytest.mark.django_db

OPS = DeclaredChannel(name="ops", kind="record", config={"tag": "ops"}, origin="tests/upkeep.py")
PAGER = DeclaredChannel(name="pager", kind="record", origin="tests/upkeep.py")
FAILING = DeclaredRule(
    name="pings failing",
    trigger="consecutive_failures",
    target_type="task",
    target="scheduler.ping",
    threshold=3,
    channels=("ops",),
    quiet_start="22:00",
    quiet_end=time(6, 30),
    quiet_timezone="Europe/Paris",
    description="Three failed pings in a row.",
    origin="tests/upkeep.py",
)
DEEP = DeclaredRule(
    name="default queue deep",
    trigger="queue_depth",
    target_type="queue",
    target="default",
    threshold=500,
    duration=300,
    channels=("ops", "pager"),
    origin="tests/upkeep.py",
)


@pytest.fixture(autouse=True)
def record_kind(settings: Any) -> None:
    """The tests' own channel kind (tests/alert_kinds.py), registered as a deployment would."""
    settings.SCHEDULER_ALERT_CHANNEL_KINDS = {
        **settings.SCHEDULER_ALERT_CHANNEL_KINDS,
        "record": alert_kinds.PATH,
    }


def _sync(channels: Any = (OPS, PAGER), rules: Any = (FAILING, DEEP), **options: Any) -> Any:
    return alerts_sync(AlertDeclarations(list(channels), list(rules)), **options)


def _actions(report: Any) -> dict[tuple[str, str], str]:
    return {(change.what, change.name): change.action for change in report.changes}


def _rule(name: str = FAILING.name) -> dict[str, Any]:
    return rule_row_fields(AlertRule.objects.get(name=name))


def _staff_edit(name: str = FAILING.name, **changes: Any) -> None:
    values = {**_rule(name), **changes}
    for end in ("quiet_start", "quiet_end"):
        values[end] = time.fromisoformat(values[end]) if values[end] else None
    rule_save(RuleInput(name=name, **values), source=Source.ADMIN)


def test_a_sync_on_an_empty_database_creates_the_channels_then_the_rules():
    report = _sync()

    assert list(_actions(report).items()) == [
        (("channel", "ops"), "create"),
        (("channel", "pager"), "create"),
        (("rule", FAILING.name), "create"),
        (("rule", DEEP.name), "create"),
    ]
    assert all(change.applied for change in report.changes)
    assert AlertChannel.objects.get(name="ops").config == {"tag": "ops"}
    assert _rule() == {
        "trigger": "consecutive_failures",
        "target_type": "task",
        "target": "scheduler.ping",
        "threshold": 3,
        "duration": None,
        "channels": ["ops"],
        "repeat_interval": 4 * 3600,
        "quiet_start": "22:00:00",
        "quiet_end": "06:30:00",
        "quiet_timezone": "Europe/Paris",
        "description": "Three failed pings in a row.",
        "enabled": True,
    }
    assert _rule(DEEP.name)["channels"] == ["ops", "pager"]
    audit = AuditEntry.objects.get(periodic_task_name=f"rule {FAILING.name}")
    assert (audit.action, audit.source) == (AuditEntry.Action.CREATED, Source.CODE)
    assert set(DeclaredAlert.objects.values_list("entity", "name", "origin")) == {
        ("channel", "ops", "tests/upkeep.py"),
        ("channel", "pager", "tests/upkeep.py"),
        ("rule", FAILING.name, "tests/upkeep.py"),
        ("rule", DEEP.name, "tests/upkeep.py"),
    }


def test_a_second_sync_changes_nothing():
    _sync()
    audited = AuditEntry.objects.count()

    again = _sync()

    assert again.in_sync
    assert again.unchanged == 4
    assert AuditEntry.objects.count() == audited


def test_a_field_the_trigger_ignores_does_not_show_as_a_change_forever():
    ignored = replace(FAILING, duration=600)  # consecutive failures take no duration

    _sync(rules=[ignored])

    assert _rule()["duration"] is None
    assert _sync(rules=[ignored]).in_sync


def test_what_the_code_changed_is_applied_when_staff_left_it_alone():
    _sync()

    report = _sync(
        channels=[replace(OPS, config={"tag": "team"}), PAGER],
        rules=[replace(FAILING, threshold=5, channels=("ops", "pager")), DEEP],
    )

    assert [(c.what, c.name, c.action, c.fields) for c in report.changes] == [
        ("channel", "ops", "update", {"config": ({"tag": "ops"}, {"tag": "team"})}),
        (
            "rule",
            FAILING.name,
            "update",
            {"threshold": (3, 5), "channels": (["ops"], ["ops", "pager"])},
        ),
    ]
    assert AlertChannel.objects.get(name="ops").config == {"tag": "team"}
    assert (_rule()["threshold"], _rule()["channels"]) == (5, ["ops", "pager"])


def test_a_staff_edit_survives_sync_and_shows_as_drift_until_forced():
    _sync()
    _staff_edit(threshold=10)

    kept = _sync()

    (change,) = kept.changes
    assert (change.what, change.action, change.fields) == ("rule", "drift", {"threshold": (10, 3)})
    assert "changed by staff, kept" in change.message
    assert _rule()["threshold"] == 10
    assert _sync().changes[0].action == "drift"  # still

    forced = _sync(force=True)

    assert _actions(forced) == {("rule", FAILING.name): "update"}
    assert _rule()["threshold"] == 3
    last = AuditEntry.objects.filter(periodic_task_name=f"rule {FAILING.name}").first()
    assert last is not None
    assert (last.action, last.source) == (AuditEntry.Action.UPDATED, Source.CODE)
    assert _sync().in_sync


def test_a_code_change_is_applied_beside_a_field_staff_changed():
    _sync()
    channel_save(name="pager", kind="record", config={}, enabled=False, source=Source.ADMIN)
    _staff_edit(description="Staff's words")

    report = _sync(
        channels=[OPS, replace(PAGER, config={"tag": "p"})],
        rules=[replace(FAILING, threshold=4), DEEP],
    )

    changes = {(c.what, c.name): c for c in report.changes}
    assert changes["channel", "pager"].fields == {"config": ({}, {"tag": "p"})}
    assert "enabled" in changes["channel", "pager"].message
    assert changes["rule", FAILING.name].fields == {"threshold": (3, 4)}
    assert "description" in changes["rule", FAILING.name].message
    pager = AlertChannel.objects.get(name="pager")
    assert (pager.config, pager.enabled) == ({"tag": "p"}, False)
    assert (_rule()["threshold"], _rule()["description"]) == (4, "Staff's words")


def test_a_removed_declaration_is_disabled_not_deleted():
    _sync()

    report = _sync(channels=[OPS], rules=[FAILING])

    assert [(c.what, c.name, c.action, c.fields) for c in report.changes] == [
        ("channel", "pager", "disable", {"enabled": (True, False)}),
        ("rule", DEEP.name, "disable", {"enabled": (True, False)}),
    ]
    assert not AlertChannel.objects.get(name="pager").enabled
    assert not AlertRule.objects.get(name=DEEP.name).enabled
    assert not DeclaredAlert.objects.filter(name__in=["pager", DEEP.name]).exists()
    assert _sync(channels=[OPS], rules=[FAILING]).in_sync  # staff may enable them again


def test_a_dry_run_says_the_plan_and_changes_nothing():
    report = _sync(dry_run=True)

    assert set(_actions(report).values()) == {"create"}
    assert not any(change.applied for change in report.changes)
    assert not AlertChannel.objects.exists()
    assert not AlertRule.objects.exists()
    assert not DeclaredAlert.objects.exists()


def test_a_rule_may_watch_a_schedule_the_same_dry_run_would_create():
    watching = DeclaredRule(
        name="nap failed", trigger="failed", target_type="schedule", target="upkeep: nap"
    )

    planned = _sync(rules=[watching], dry_run=True, schedules={"upkeep: nap"})
    unplanned = _sync(rules=[watching], dry_run=True)

    assert _actions(planned)["rule", "nap failed"] == "create"
    (error,) = unplanned.errors
    assert "no periodic task named 'upkeep: nap'" in error.message


def test_a_bad_declaration_is_an_error_naming_its_field_and_the_others_still_sync():
    lost = replace(DEEP, name="lost", channels=("nowhere",))
    wrong = replace(FAILING, name="wrong", target="billing.send_invoices")

    report = _sync(rules=[lost, wrong, FAILING])

    assert _actions(report) == {
        ("channel", "ops"): "create",
        ("channel", "pager"): "create",
        ("rule", "lost"): "error",
        ("rule", "wrong"): "error",
        ("rule", FAILING.name): "create",
    }
    errors = {change.name: change.message for change in report.errors}
    assert errors["lost"].startswith("channels: no channel named nowhere")
    assert errors["wrong"].startswith("target: 'billing.send_invoices' is not a task")
    assert not AlertRule.objects.filter(name__in=["lost", "wrong"]).exists()
    assert not DeclaredAlert.objects.filter(name__in=["lost", "wrong"]).exists()


def test_a_rule_may_name_a_channel_staff_made():
    channel_save(name="staff's", kind="record", config={}, source=Source.ADMIN)

    report = _sync(channels=[], rules=[replace(FAILING, channels=("staff's",))])

    assert _actions(report) == {("rule", FAILING.name): "create"}
    assert _rule()["channels"] == ["staff's"]


def test_a_channel_whose_kind_cannot_be_loaded_is_an_error_and_its_rules_too(settings):
    settings.SCHEDULER_ALERT_CHANNEL_KINDS = {
        **settings.SCHEDULER_ALERT_CHANNEL_KINDS,
        "gone": "tests.alert_kinds.NoSuchChannel",
    }

    report = _sync(channels=[replace(OPS, kind="gone")], rules=[FAILING])

    assert _actions(report) == {("channel", "ops"): "error", ("rule", FAILING.name): "error"}
    assert "cannot be loaded" in report.errors[0].message


# --- checks at start (scheduler.E005) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "field", "says"),
    [
        (replace(OPS, kind="pigeon"), "kind", "unknown channel kind 'pigeon'"),
        (replace(OPS, config={"fail": "often"}), "config", "fail: retry or refuse"),
        (replace(OPS, config={"api_token": "abc"}), "config", "a secret is never declared"),
        (replace(OPS, name=""), "name", "a non-empty string"),
        (replace(FAILING, trigger="exploded"), "trigger", "unknown trigger 'exploded'"),
        (replace(FAILING, threshold=0), "threshold", "must be a positive number"),
        (replace(DEEP, duration=-5), "duration", "must be a positive number"),
        (replace(FAILING, repeat_interval=-1), "repeat_interval", "must be 0 (never)"),
        (replace(FAILING, target="nothing.here"), "target", "is not a task in the catalog"),
        (replace(FAILING, target_type="planet"), "target_type", "unknown target type"),
        (replace(DEEP, target_type="schedule", target="x"), "target_type", "watches queues"),
        (replace(FAILING, target_type="schedule", target=""), "target", "name the schedule"),
        (replace(FAILING, quiet_start="late"), "quiet_start", "not a time of day"),
        (replace(FAILING, quiet_end=None), "quiet_start", "both ends of the quiet window"),
        (replace(FAILING, quiet_timezone="Mars/Base"), "quiet_timezone", "unknown zone"),
        (replace(FAILING, channels="ops"), "channels", "a list of channel names"),
    ],
)
def test_what_is_wrong_without_the_database_is_named_by_field(declared, field, says):
    channels = [declared] if isinstance(declared, DeclaredChannel) else []
    rules = [declared] if isinstance(declared, DeclaredRule) else []

    (problem,) = alert_declarations_check(AlertDeclarations(channels, rules))

    assert (problem.name, problem.origin, problem.field) == (
        declared.name,
        "tests/upkeep.py",
        field,
    )
    assert says in str(problem)


def test_a_target_or_channel_that_needs_the_database_is_left_to_sync():
    watching = replace(FAILING, target_type="schedule", target="no such schedule")

    assert alert_declarations_check(AlertDeclarations([], [watching, DEEP])) == []


def test_a_wrong_declaration_in_an_upkeep_module_stops_the_process_at_start(monkeypatch):
    broken = replace(upkeep.ALERT_RULES[0], trigger="exploded", origin="")
    monkeypatch.setattr(upkeep, "ALERT_RULES", [broken])

    errors = [message for message in run_checks() if message.id == "scheduler.E005"]

    assert [message.msg for message in errors] == [
        "scheduler/upkeep.py: 'beat has no leader': trigger: unknown trigger 'exploded' "
        "(failed, consecutive_failures, missed, long_run, no_success, beat_no_leader, "
        "no_worker, queue_depth)"
    ]


def test_a_channel_declared_twice_or_not_a_declaration_is_an_error_at_start(monkeypatch):
    monkeypatch.setattr(upkeep, "CHANNELS", [*upkeep.CHANNELS, *upkeep.CHANNELS])
    (twice,) = [message.msg for message in run_checks() if message.id == "scheduler.E005"]
    assert twice == (
        "scheduler/upkeep.py: 'signal': name: declared again (first in scheduler/upkeep.py)"
    )

    monkeypatch.setattr(upkeep, "CHANNELS", [{"name": "ops"}])
    (wrong,) = [message.msg for message in run_checks() if message.id == "scheduler.E005"]
    assert "CHANNELS: not a DeclaredChannel" in wrong


# --- the scheduler's own declarations and the command --------------------------------------------


def test_the_scheduler_declares_a_signal_channel_and_a_beat_rule_that_check_clean():
    declared = declared_alerts()

    assert [(c.name, c.kind, c.origin) for c in declared.channels] == [
        ("signal", "signal", "scheduler/upkeep.py")
    ]
    assert [(r.name, r.trigger, r.duration, tuple(r.channels)) for r in declared.rules] == [
        ("beat has no leader", "beat_no_leader", 120, ("signal",))
    ]
    assert alert_declarations_check(declared) == []


def _command(*args: str) -> tuple[int, str]:
    """(exit code, what it printed, then why it failed when it did)."""
    out = StringIO()
    try:
        call_command("scheduler", "sync", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, f"{out.getvalue()}\n{exc}"
    return 0, out.getvalue()


def _json(said: str) -> Any:
    return json.JSONDecoder().raw_decode(said)[0]  # what follows the document is the failure


def test_the_command_syncs_the_alerts_after_the_schedules(settings):
    settings.CELERY_BEAT_SCHEDULE = {}

    code, said = _command("--dry-run")

    assert code == 1
    assert "+ create channel 'signal' (scheduler/upkeep.py)" in said
    assert "+ create rule 'beat has no leader' (scheduler/upkeep.py)" in said
    assert not AlertRule.objects.exists()

    code, said = _command()
    assert code == 0, said
    assert "+ created rule 'beat has no leader' (scheduler/upkeep.py)" in said
    rule = AlertRule.objects.get(name="beat has no leader")
    assert (rule.trigger, rule.duration, rule.enabled) == ("beat_no_leader", 120, True)
    assert [channel.name for channel in rule.channels.all()] == ["signal"]

    code, said = _command("--dry-run", "--json")
    assert code == 0
    document = _json(said)
    assert (document["in_sync"], document["unchanged_alerts"]) == (True, 2)


def test_the_command_shows_alert_drift_as_json_and_exits_2_on_an_error(monkeypatch):
    call_command("scheduler", "sync", stdout=StringIO())
    _staff_edit("beat has no leader", duration=600)

    code, said = _command("--dry-run", "--json")

    assert code == 1
    (change,) = _json(said)["changes"]
    assert change["type"] == "rule"
    assert (change["action"], change["fields"]) == (
        "drift",
        {"duration": {"database": 600, "code": 120}},
    )

    monkeypatch.setattr(upkeep, "ALERT_RULES", [replace(FAILING, channels=("nowhere",))])
    code, said = _command()
    assert code == 2
    assert "x error rule 'pings failing' (tests/upkeep.py)" in said
    assert "1 declaration(s) failed" in said
