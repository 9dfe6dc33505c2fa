"""`manage.py scheduler update NAME [options]`: the fields given changed through the update
service (the others kept), checked as the admin and the API check them; a bad value exits 1
naming the option, and nothing changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduler.models import AuditEntry, Source
from tests.scheduler.cli.helpers import create, scheduler, scheduler_json

pytestmark = pytest.mark.django_db


def cleanup(name: str = "cleanup") -> None:
    scheduler(
        "create",
        name,
        "every day at 3am",
        "--task",
        "scheduler.cleanup_results",
        "--params",
        '{"days": 7}',
        "--tz",
        "Europe/Paris",
        "--description",
        "keep a week",
    )


def state(name: str = "cleanup") -> dict[str, Any]:
    return scheduler_json("show", name, "--json")


def test_it_changes_the_fields_given_and_keeps_the_others():
    cleanup()

    output = scheduler(
        "update",
        "cleanup",
        "--schedule",
        "every day at 4am",
        "--params",
        '{"days": 3}',
        "--queue",
        "maintenance",
        "--max-runs",
        "10",
    )

    row = PeriodicTask.objects.get(name="cleanup")
    after = state()
    assert output.startswith("Updated 'cleanup': max_runs, params, remaining_runs, schedule.")
    assert row.crontab is not None
    assert (row.crontab.hour, str(row.crontab.timezone)) == ("4", "Europe/Paris")
    assert after["params"]["days"] == 3
    assert after["max_runs"] == 10
    assert after["description"] == "keep a week"  # not given: kept
    assert after["timezone"] == "Europe/Paris"
    entry = AuditEntry.objects.filter(periodic_task_name="cleanup").first()
    assert entry is not None
    assert (entry.action, entry.source) == ("updated", Source.CLI)
    assert [params["days"] for params in entry.changes["params"]] == [7, 3]


def test_it_enables_disables_renames_and_describes():
    cleanup()

    scheduler("update", "cleanup", "--disable", "--description", "paused for the move")
    disabled = state()
    scheduler("update", "cleanup", "--enable", "--rename", "cleanup results")

    assert disabled["enabled"] is False
    assert disabled["description"] == "paused for the move"
    assert state("cleanup results")["enabled"] is True
    assert not PeriodicTask.objects.filter(name="cleanup").exists()


def test_a_new_zone_alone_reads_the_stored_schedule_again_in_it():
    cleanup()

    scheduler("update", "cleanup", "--tz", "Asia/Tokyo")

    row = PeriodicTask.objects.get(name="cleanup")
    assert row.crontab is not None
    assert (row.crontab.hour, str(row.crontab.timezone)) == ("3", "Asia/Tokyo")


def test_an_empty_value_clears_a_limit():
    cleanup()
    scheduler("update", "cleanup", "--max-runs", "5", "--catchup-window", "1h")

    scheduler("update", "cleanup", "--max-runs", "", "--catchup-window", "")

    after = state()
    assert (after["max_runs"], after["catchup_window"]) == (None, None)


def test_it_says_when_nothing_changed():
    cleanup()

    output = scheduler("update", "cleanup", "--description", "keep a week")

    assert output.strip() == "'cleanup' is unchanged."
    assert not AuditEntry.objects.filter(action="updated").exists()


UPDATE_REFUSALS = [
    (["--schedule", "0 25 * * *"], "--schedule: hour 25 is out of range 0-23"),
    (["--params", '{"days": "a week"}'], "--params: invalid parameters"),
    (["--params", "{not json"], "--params:"),
    (["--queue", "nowhere"], "--queue: unknown queue 'nowhere'"),
    (["--tz", "Mars/Olympus"], "--tz:"),
    (["--overlap", "sometimes"], "--overlap:"),
    (["--max-runs", "0"], "--max-runs:"),
    (["--jitter", "2h"], "--jitter:"),
    (["--task", "scheduler.nope"], "--task:"),
    (["--rename", "other"], "--rename: a periodic task named 'other' already exists"),
    (["--schedule", "every day at 5am", "--params", "[1]"], "--params:"),
    ([], "nothing to change"),
]


@pytest.mark.parametrize(("extra", "message"), UPDATE_REFUSALS)
def test_bad_input_exits_1_naming_the_option_and_changes_nothing(extra, message):
    cleanup()
    create("other")
    before = state()
    entries = AuditEntry.objects.count()

    with pytest.raises(CommandError) as error:
        scheduler("update", "cleanup", *extra)

    assert message in str(error.value)
    assert error.value.returncode == 1
    assert state() == before
    assert AuditEntry.objects.count() == entries


def test_an_unknown_name_exits_1():
    with pytest.raises(CommandError, match="no periodic task named 'ghost'"):
        scheduler("update", "ghost", "--schedule", "hourly")


def test_a_task_outside_the_catalog_is_not_edited():
    interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="legacy", task="billing.send_invoices", interval=interval)

    with pytest.raises(CommandError, match="outside the catalog"):
        scheduler("update", "legacy", "--description", "x")

    assert PeriodicTask.objects.get(name="legacy").description == ""
