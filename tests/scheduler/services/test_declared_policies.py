"""A schedule's policies declared in code (`upkeep.py`) and in files (`scheduler export` /
`import`): synced to the periodic task, changes by staff shown as drift, the misfire preset read
as its catch-up, and a periodic task synced before these fields existed still in sync."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from scheduler.models import DeclaredState, ScheduleOptions, Source
from scheduler.schedules.declared import DeclaredSchedule, declared_in, row_fields, unsynced
from scheduler.selectors.exports import schedules_exported
from scheduler.services import schedule_update, schedules_sync
from scheduler.services.imports import ImportEntry, schedules_import

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITED = DeclaredSchedule(
    name="upkeep: limited",
    task="scheduler.ping",
    schedule="every day at 9am",
    timezone="Europe/Paris",
    overlap="buffer_one",
    catchup="all",
    catchup_window="2h",
    jitter=30,
    start_time="2026-04-01T09:00",
    end_time=datetime(2026, 6, 1, 7, 0, tzinfo=UTC),
    max_runs=20,
    pause_after_failures=3,
    origin="tests/upkeep.py",
)


def _row(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("options", "declared").get(name=name)


@time_machine.travel(NOW, tick=False)
def test_a_declaration_sets_every_policy_and_a_second_sync_changes_nothing():
    report = schedules_sync([LIMITED])

    assert [change.action for change in report.changes] == ["create"]
    row = _row(LIMITED.name)
    options = row.options
    assert (options.overlap, options.catchup, options.catchup_window) == ("buffer_one", "all", 7200)
    assert (options.jitter, options.max_runs, options.remaining_runs) == (30, 20, 20)
    assert options.pause_after_failures == 3
    assert row.start_time == datetime(2026, 4, 1, 7, 0, tzinfo=UTC)  # 09:00 in Paris
    assert row.expires == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert row_fields(row) == {**LIMITED.fields(), "queue": "default"}
    assert schedules_sync([LIMITED]).in_sync


@time_machine.travel(NOW, tick=False)
def test_a_policy_changed_in_code_is_applied_and_one_changed_by_staff_is_drift():
    schedules_sync([LIMITED])
    schedule_update(name=LIMITED.name, jitter=60, source=Source.ADMIN)

    report = schedules_sync([replace(LIMITED, catchup_window=600, max_runs=30)])

    (change,) = report.changes
    assert change.action == "update"
    assert change.fields == {"catchup_window": (7200, 600), "max_runs": (20, 30)}
    assert "jitter" in change.message
    row = _row(LIMITED.name)
    assert (row.options.catchup_window, row.options.max_runs, row.options.jitter) == (600, 30, 60)
    declared = declared_in(row)
    assert declared is not None
    assert declared.drift == {"jitter": (60, 30)}


def test_the_misfire_preset_is_declared_as_its_catch_up():
    skipping = DeclaredSchedule(
        name="upkeep: skipping", task="scheduler.ping", schedule="every hour", misfire="skip"
    )

    schedules_sync([skipping])

    options = _row(skipping.name).options
    assert (options.catchup, options.catchup_window, options.misfire) == ("none", None, "skip")
    assert schedules_sync([skipping]).in_sync
    # The same schedule declared the new way is the same declaration.
    assert schedules_sync([replace(skipping, misfire=None, catchup="none")]).in_sync


def test_a_bad_policy_is_an_error_naming_the_declaration_and_its_field():
    wrong = DeclaredSchedule(
        name="upkeep: wrong", task="scheduler.ping", schedule="every hour", misfire="sometimes"
    )

    report = schedules_sync([wrong, replace(LIMITED, name="upkeep: zero", max_runs=0)])

    assert [(change.name, change.action) for change in report.errors] == [
        ("upkeep: wrong", "error"),
        ("upkeep: zero", "error"),
    ]
    assert "misfire: 'sometimes' is not one of run_once, skip" in report.errors[0].message
    assert "max_runs: 0 would never let it run" in report.errors[1].message
    assert not PeriodicTask.objects.exists()


def test_a_task_synced_before_the_policies_were_declared_is_still_in_sync():
    plain = DeclaredSchedule(
        name="upkeep: old", task="scheduler.ping", schedule="every hour", misfire="skip"
    )
    schedules_sync([plain])
    row = _row(plain.name)
    # What a sync of an earlier version recorded: misfire, none of the new fields.
    old = {
        name: value
        for name, value in row.declared.fields.items()
        if name not in ("catchup", "catchup_window", "jitter", "start_time", "end_time")
        and name not in ("max_runs", "pause_after_failures")
    }
    DeclaredState.objects.filter(periodic_task=row).update(fields={**old, "misfire": "skip"})
    row = _row(plain.name)

    assert unsynced([plain], {plain.name: row}, {plain.name: row.declared.fields}) == {}
    assert declared_in(row) is not None
    assert declared_in(row).drift == {}  # type: ignore[union-attr]
    assert schedules_sync([plain]).in_sync


@time_machine.travel(NOW, tick=False)
def test_export_then_import_carries_the_policies():
    schedules_sync([LIMITED])
    exported, _ = schedules_exported(match="upkeep: limited")
    (entry,) = exported
    assert entry["catchup"] == "all"
    assert entry["end_time"] == "2026-06-01T07:00:00+00:00"
    PeriodicTask.objects.all().delete()

    report = schedules_import([ImportEntry(values=entry, where="line 1")])

    assert report.errors == []
    assert report.created == [LIMITED.name]
    assert row_fields(_row(LIMITED.name)) == {
        name: value for name, value in entry.items() if name != "name"
    }


@time_machine.travel(NOW, tick=False)
def test_an_import_of_a_bad_policy_names_where_and_the_field_and_applies_nothing():
    schedules_sync([LIMITED])
    exported, _ = schedules_exported()
    entry = {**exported[0], "catchup_window": -1}

    report = schedules_import([ImportEntry(values=entry, where="line 3")])
    preset = schedules_import(
        [ImportEntry(values={**exported[0], "misfire": "skip"}, where="line 9")]
    )

    assert report.errors == [
        "line 3: catchup_window: -1 is less than 1: give a number of seconds of at least 1, "
        "or leave it empty for no limit"
    ]
    assert preset.errors == [
        "line 9: misfire: 'skip' is the preset of catchup 'none', but catchup is 'all': give "
        "one of them"
    ]
    assert ScheduleOptions.objects.get(periodic_task__name=LIMITED.name).catchup_window == 7200
