"""Schedules declared in code and `scheduler sync`: created once, code changes applied, staff
changes kept and shown as drift until forced, removed declarations disabled, never deleted."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from celery.schedules import crontab
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from scheduler.models import AuditEntry, DeclaredState, Source
from scheduler.schedules.declared import (
    DeclarationError,
    DeclaredSchedule,
    beat_schedule_declarations,
    declared_schedules,
    row_fields,
)
from scheduler.services import schedule_update, schedules_sync

pytestmark = pytest.mark.django_db

PING = DeclaredSchedule(
    name="upkeep: ping",
    task="scheduler.ping",
    schedule="every 5 minutes",
    description="A ping.",
    origin="tests/upkeep.py",
)
SLEEP = DeclaredSchedule(
    name="upkeep: nap",
    task="scheduler.sleep",
    schedule="every day at 4am",
    timezone="Europe/Paris",
    params={"seconds": 1},
    origin="tests/upkeep.py",
)


def _with(declared: DeclaredSchedule, **changes: Any) -> DeclaredSchedule:
    return replace(declared, **changes)


def _actions(report: Any) -> dict[str, str]:
    return {change.name: change.action for change in report.changes}


def test_a_sync_on_an_empty_database_creates_exactly_the_declarations():
    report = schedules_sync([PING, SLEEP])

    assert _actions(report) == {PING.name: "create", SLEEP.name: "create"}
    assert all(change.applied for change in report.changes)
    nap = PeriodicTask.objects.get(name=SLEEP.name)
    assert row_fields(nap) == {
        **SLEEP.fields(),
        "queue": "default",  # the catalog's, as every schedule of the task gets it
    }
    assert DeclaredState.objects.get(periodic_task=nap).origin == "tests/upkeep.py"
    audit = AuditEntry.objects.get(periodic_task_name=SLEEP.name)
    assert (audit.action, audit.source) == (AuditEntry.Action.CREATED, Source.CODE)


def test_a_second_sync_changes_nothing():
    schedules_sync([PING, SLEEP])
    audited = AuditEntry.objects.count()

    again = schedules_sync([PING, SLEEP])

    assert again.in_sync
    assert again.unchanged == 2
    assert AuditEntry.objects.count() == audited


def test_what_the_code_changed_is_applied_when_staff_left_it_alone():
    schedules_sync([PING])

    report = schedules_sync([_with(PING, schedule="every 10 minutes", description="Pings.")])

    (change,) = report.changes
    assert change.action == "update"
    assert change.fields == {
        "schedule": ("every 5 minutes", "every 10 minutes"),
        "description": ("A ping.", "Pings."),
    }
    assert row_fields(PeriodicTask.objects.get(name=PING.name))["schedule"] == "every 10 minutes"


def test_a_staff_edit_survives_sync_and_shows_as_drift_until_forced():
    schedules_sync([PING])
    schedule_update(name=PING.name, schedule="every 7 minutes", source=Source.ADMIN)

    kept = schedules_sync([PING])
    still = schedules_sync([PING])

    for report in (kept, still):
        (change,) = report.changes
        assert change.action == "drift"
        assert change.fields == {"schedule": ("every 7 minutes", "every 5 minutes")}
        assert not change.applied
    assert row_fields(PeriodicTask.objects.get(name=PING.name))["schedule"] == "every 7 minutes"

    forced = schedules_sync([PING], force=True)

    assert _actions(forced) == {PING.name: "update"}
    assert row_fields(PeriodicTask.objects.get(name=PING.name))["schedule"] == "every 5 minutes"
    last = AuditEntry.objects.filter(periodic_task_name=PING.name).first()
    assert last is not None
    assert (last.action, last.source) == (AuditEntry.Action.UPDATED, Source.CODE)
    assert schedules_sync([PING]).in_sync


def test_a_code_change_is_applied_beside_a_field_staff_changed():
    schedules_sync([PING])
    schedule_update(name=PING.name, description="Staff's words", source=Source.ADMIN)

    report = schedules_sync([_with(PING, schedule="every 10 minutes")])

    (change,) = report.changes
    assert change.action == "update"
    assert change.fields == {"schedule": ("every 5 minutes", "every 10 minutes")}
    assert "description" in change.message
    fields = row_fields(PeriodicTask.objects.get(name=PING.name))
    assert (fields["schedule"], fields["description"]) == ("every 10 minutes", "Staff's words")


def test_a_row_that_was_there_before_its_declaration_is_adopted_and_its_differences_shown():
    schedules_sync([PING])
    DeclaredState.objects.all().delete()  # as if made by hand, before it was declared
    schedule_update(name=PING.name, schedule="every 6 minutes", source=Source.ADMIN)

    report = schedules_sync([PING])

    assert _actions(report) == {PING.name: "drift"}
    assert DeclaredState.objects.filter(periodic_task__name=PING.name).exists()


def test_a_removed_declaration_is_disabled_not_deleted():
    schedules_sync([PING, SLEEP])

    report = schedules_sync([PING])

    (change,) = report.changes
    assert (change.name, change.action, change.fields) == (
        SLEEP.name,
        "disable",
        {"enabled": (True, False)},
    )
    nap = PeriodicTask.objects.get(name=SLEEP.name)
    assert not nap.enabled
    assert not DeclaredState.objects.filter(periodic_task=nap).exists()
    assert schedules_sync([PING]).in_sync  # no longer declared: staff may enable it again


def test_a_dry_run_prints_the_plan_and_changes_nothing():
    report = schedules_sync([PING], dry_run=True)

    assert _actions(report) == {PING.name: "create"}
    assert not report.changes[0].applied
    assert not PeriodicTask.objects.filter(name=PING.name).exists()
    assert not DeclaredState.objects.exists()


def test_a_bad_declaration_fails_with_its_name_and_field_and_the_others_still_sync():
    wrong = _with(SLEEP, params={"seconds": "long"})

    report = schedules_sync([wrong, PING])

    assert _actions(report) == {SLEEP.name: "error", PING.name: "create"}
    assert "params" in report.errors[0].message
    assert not PeriodicTask.objects.filter(name=SLEEP.name).exists()


def test_a_task_outside_the_catalog_is_an_error_not_silence():
    report = schedules_sync([_with(PING, task="billing.send_invoices")])

    (error,) = report.errors
    assert error.name == PING.name
    assert "billing.send_invoices" in error.message


def test_beat_schedule_entries_are_declarations():
    declared = beat_schedule_declarations(
        {
            "every half minute": {"task": "scheduler.ping", "schedule": 30.0},
            "hourly": {"task": "scheduler.ping", "schedule": timedelta(hours=1)},
            "weekday mornings": {
                "task": "scheduler.sleep",
                "schedule": crontab(minute="15", hour="7", day_of_week="1-5"),
                "kwargs": {"seconds": 2},
                "options": {"queue": "maintenance"},
            },
        }
    )

    assert [(d.name, d.schedule, dict(d.params), d.queue) for d in declared] == [
        ("every half minute", "every 30 seconds", {}, None),
        ("hourly", "every 3600 seconds", {}, None),
        ("weekday mornings", "15 7 * * 1-5", {"seconds": 2}, "maintenance"),
    ]
    assert {d.origin for d in declared} == {"settings.CELERY_BEAT_SCHEDULE"}
    assert _actions(schedules_sync(declared)) == {d.name: "create" for d in declared}


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"schedule": 30}, "task"),
        ({"task": "scheduler.ping", "schedule": 30, "args": (1,)}, "args"),
        ({"task": "scheduler.ping", "schedule": "at sunset"}, "schedule"),
        ({"task": "scheduler.ping", "schedule": 0.5}, "schedule"),
    ],
)
def test_a_beat_schedule_entry_we_cannot_read_names_its_field(entry, field):
    with pytest.raises(DeclarationError) as raised:
        beat_schedule_declarations({"broken": entry})

    assert (raised.value.name, raised.value.field) == ("broken", field)
    assert "settings.CELERY_BEAT_SCHEDULE" in str(raised.value)


def test_a_name_declared_twice_is_an_error_naming_both_places():
    ping = {"task": "scheduler.ping", "schedule": 60}

    with pytest.raises(DeclarationError, match=r"declared again \(first in tournaments/upkeep\.py"):
        declared_schedules(beat_schedule={"tournaments: check transitions": ping})


def test_every_app_declares_its_upkeep_and_a_fresh_database_gets_it_all():
    declared = {d.name: d.origin for d in declared_schedules(beat_schedule={})}

    assert declared == {
        "system: clean up results": "scheduler/upkeep.py",
        "system: health check": "scheduler/upkeep.py",
        "system: back up the database": "scheduler/upkeep.py",
        "system: clean up log files": "scheduler/upkeep.py",
        "agents: summarize long sessions": "agents/upkeep.py",
        "agents: follow up silent sessions": "agents/upkeep.py",
        "agents: close stale sessions": "agents/upkeep.py",
        "agents: back up memory": "agents/upkeep.py",
        "agents: clean up memory": "agents/upkeep.py",
        "tournaments: check transitions": "tournaments/upkeep.py",
        "tournaments: recover crashed agents": "tournaments/upkeep.py",
        "tournaments: update rankings": "tournaments/upkeep.py",
    }


def test_the_cleanup_the_migration_made_is_in_sync_with_its_declaration(cleanup_schedule):
    report = schedules_sync(
        [d for d in declared_schedules(beat_schedule={}) if d.name == cleanup_schedule.name]
    )

    assert report.in_sync, report.changes


def _sync(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("scheduler", "sync", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue() + str(exc)
    return 0, out.getvalue()


def test_the_command_says_the_plan_and_exits_0_in_sync_1_with_changes_2_on_errors(settings):
    settings.CELERY_BEAT_SCHEDULE = {}
    code, said = _sync("--dry-run")
    assert code == 1
    assert "+ create 'tournaments: check transitions' (tournaments/upkeep.py)" in said
    assert "Dry run: nothing was changed." in said
    assert not PeriodicTask.objects.filter(name="tournaments: check transitions").exists()

    assert _sync()[0] == 0
    assert _sync("--dry-run") == (
        0,
        "In sync: 12 declared schedule(s) in sync. "
        "2 declared alert channel(s) and rule(s) in sync.\n",  # scheduler/upkeep.py's
    )


def test_beat_warns_at_start_naming_each_declared_schedule_that_differs(caplog, settings):
    from scheduler.beat.scheduler import warn_unsynced_declarations

    with caplog.at_level("WARNING", logger="scheduler.beat.scheduler"):
        missing = warn_unsynced_declarations()
    assert missing["tournaments: check transitions"] == "missing"
    assert "run `manage.py scheduler sync`" in caplog.text

    call_command("scheduler", "sync", stdout=StringIO())
    caplog.clear()
    assert warn_unsynced_declarations() == {}
    assert caplog.text == ""

    schedule_update(
        name="tournaments: check transitions", schedule="every 2 minutes", source=Source.ADMIN
    )
    with caplog.at_level("WARNING", logger="scheduler.beat.scheduler"):
        drifted = warn_unsynced_declarations()
    assert drifted == {"tournaments: check transitions": "changed by staff: schedule"}
    assert "'tournaments: check transitions': changed by staff: schedule" in caplog.text


def test_a_declaration_outside_the_catalog_stops_the_process_at_start(monkeypatch):
    from django.core.checks import run_checks

    from config.celery import app

    monkeypatch.setitem(
        app.conf, "beat_schedule", {"invoices": {"task": "billing.send_invoices", "schedule": 60}}
    )

    errors = [message for message in run_checks() if message.id == "scheduler.E004"]

    assert [message.msg for message in errors] == [
        "settings.CELERY_BEAT_SCHEDULE: 'invoices': task: 'billing.send_invoices' is not in "
        "the catalog"
    ]


# --- drift you can see ---------------------------------------------------------------------------


@pytest.fixture
def drifted() -> PeriodicTask:
    """The tournaments' transitions, synced from code, then edited by staff in the admin."""
    call_command("scheduler", "sync", stdout=StringIO())
    schedule_update(
        name="tournaments: check transitions", schedule="every 2 minutes", source=Source.ADMIN
    )
    return PeriodicTask.objects.get(name="tournaments: check transitions")


def test_the_admin_marks_declared_schedules_shows_the_drift_and_resets_to_code(admin, drifted):
    from django.urls import reverse

    listed = admin.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()
    assert "defined in code: tournaments/upkeep.py — changed here: schedule" in listed
    change = admin.get(
        reverse("admin:django_celery_beat_periodictask_change", args=[drifted.pk])
    ).content.decode()
    assert "schedule: every 2 minutes here, every minute in code" in change

    response = admin.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "reset_to_code", "_selected_action": [drifted.pk]},
        follow=True,
    )

    assert "Reset to code: tournaments: check transitions." in response.content.decode()
    assert row_fields(PeriodicTask.objects.get(pk=drifted.pk))["schedule"] == "every minute"
    entry = AuditEntry.objects.filter(periodic_task_name=drifted.name).first()
    assert entry is not None
    assert (entry.action, entry.source, entry.actor is not None) == (
        AuditEntry.Action.UPDATED,
        Source.ADMIN,
        True,
    )


def test_the_api_and_the_cli_show_where_a_schedule_is_declared_and_its_drift(drifted):
    import json

    from tests.clients import api_client, response_json
    from tests.factories import user_with

    body = response_json(api_client(user_with(superuser=True)).get(f"/api/schedules/{drifted.pk}/"))
    assert body["declared_in"] == "tournaments/upkeep.py"
    assert body["drift"] == {"schedule": {"database": "every 2 minutes", "code": "every minute"}}

    out = StringIO()
    call_command("scheduler", "list", "--json", stdout=out)
    shown = {row["name"]: row for row in json.loads(out.getvalue())}
    assert shown[drifted.name]["declared_in"] == "tournaments/upkeep.py"
    assert list(shown[drifted.name]["drift"]) == ["schedule"]
    table = StringIO()
    call_command("scheduler", "list", stdout=table)
    assert "tournaments/upkeep.py (drift: schedule)" in table.getvalue()


def test_the_dashboard_counts_the_declared_schedules_staff_changed(admin, drifted):
    from scheduler import selectors

    assert selectors.dashboard_summary()["declared_drift"] == 1
    page = admin.get("/dashboard/").content.decode()
    assert "1 changed here since declared in code" in page

    schedules_sync([], prune=False)  # nothing declared here: nothing changes
    call_command("scheduler", "sync", "--force", stdout=StringIO())
    assert selectors.dashboard_summary()["declared_drift"] == 0
