"""A schedule's policies through the services: overlap, catch-up and its window (the misfire
presets of earlier versions mapped both ways), jitter, start and end times, max runs and pausing
after failures. A bad value is refused naming its field, and nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from scheduler.models import AuditEntry, ScheduleOptions, Source, TaskEvent
from scheduler.services import ScheduleError, schedule_create, schedule_update
from tests.factories import make_schedule

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _written() -> tuple[int, int, int, int]:
    return (
        PeriodicTask.objects.count(),
        ScheduleOptions.objects.count(),
        AuditEntry.objects.count(),
        TaskEvent.objects.filter(type__startswith="schedule.").count(),
    )


def _options(name: str) -> ScheduleOptions:
    return ScheduleOptions.objects.select_related("periodic_task").get(periodic_task__name=name)


BAD_POLICIES = [
    ({"catchup_window": -1}, "catchup_window", "-1 is less than 1"),
    ({"catchup_window": 0}, "catchup_window", "0 is less than 1"),
    ({"catchup_window": 1.5}, "catchup_window", "1.5 is not a whole number"),
    ({"catchup_window": "soon"}, "catchup_window", "'soon' is not a duration"),
    ({"catchup_window": True}, "catchup_window", "True is not a whole number"),
    ({"catchup": "sometimes"}, "catchup", "'sometimes' is not one of none, latest, all"),
    ({"misfire": "later"}, "misfire", "'later' is not one of run_once, skip"),
    (
        {"misfire": "skip", "catchup": "all"},
        "misfire",
        "'skip' is the preset of catchup 'none', but catchup is 'all'",
    ),
    ({"overlap": "queue"}, "overlap", "'queue' is not one of allow, skip, buffer_one"),
    ({"jitter": 3601}, "jitter", "3601 seconds is more than the limit, 3600 seconds (1h)"),
    ({"jitter": "2h"}, "jitter", "7200 seconds is more than the limit, 3600 seconds"),
    ({"jitter": -5}, "jitter", "-5 is less than 0"),
    ({"max_runs": 0}, "max_runs", "0 would never let it run: give 1 or more"),
    ({"max_runs": "many"}, "max_runs", "'many' is not a whole number"),
    ({"max_runs": 2**70}, "max_runs", "is more than the limit"),
    ({"pause_after_failures": 0}, "pause_after_failures", "0 would never let it run"),
    (
        {"start_time": "2026-06-02T00:00:00+00:00", "end_time": "2026-06-01T00:00:00+00:00"},
        "end_time",
        "2026-06-01T00:00:00+00:00 is not after start_time 2026-06-02T00:00:00+00:00",
    ),
    ({"end_time": "2026-02-01T00:00:00+00:00"}, "end_time", "is in the past"),
    ({"start_time": "next tuesday"}, "start_time", "is not an ISO 8601 date or time"),
    ({"end_time": "9999-12-31T23:59:59-05:00"}, "end_time", "outside the years 2 to 9998"),
    ({"start_time": "0001-01-01T00:00:00+05:00"}, "start_time", "outside the years 2 to 9998"),
]


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(("fields", "field", "words"), BAD_POLICIES)
def test_create_refuses_a_bad_policy_naming_the_field_and_writes_nothing(fields, field, words):
    before = _written()

    with pytest.raises(ScheduleError) as caught:
        schedule_create(name="bad", task="scheduler.ping", schedule="every minute", **fields)

    assert list(caught.value.errors) == [field]
    assert words in " ".join(caught.value.errors[field])
    assert _written() == before


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(("fields", "field", "words"), BAD_POLICIES)
def test_update_refuses_a_bad_policy_naming_the_field_and_changes_nothing(fields, field, words):
    make_schedule(name="kept", catchup_window=600, jitter=5, max_runs=3)
    stored = (
        ScheduleOptions.objects.filter(periodic_task__name="kept").values().get(),
        PeriodicTask.objects.filter(name="kept").values().get(),
    )
    before = _written()

    with pytest.raises(ScheduleError) as caught:
        schedule_update(name="kept", source=Source.API, **fields)

    assert field in caught.value.errors
    assert words in " ".join(caught.value.errors[field])
    assert _written() == before
    assert (
        ScheduleOptions.objects.filter(periodic_task__name="kept").values().get(),
        PeriodicTask.objects.filter(name="kept").values().get(),
    ) == stored


def test_every_bad_policy_is_reported_at_once():
    with pytest.raises(ScheduleError) as caught:
        schedule_create(
            name="bad",
            task="scheduler.ping",
            schedule="every minute",
            catchup_window=-1,
            jitter=4000,
            max_runs=0,
        )

    assert set(caught.value.errors) == {"catchup_window", "jitter", "max_runs"}


@time_machine.travel(NOW, tick=False)
def test_it_saves_every_policy_and_audits_it():
    task = schedule_create(
        name="full",
        task="scheduler.ping",
        schedule="every day at 9am",
        tz="Europe/Paris",
        overlap="buffer_all",
        catchup="all",
        catchup_window="2h",
        jitter="30s",
        # Without an offset: in the schedule's zone.
        start_time="2026-04-01T09:00",
        end_time=datetime(2026, 5, 1, 9, 0, tzinfo=UTC),
        max_runs="10",
        pause_after_failures=3,
    )

    task.refresh_from_db()
    options = _options("full")
    assert (options.overlap, options.catchup, options.catchup_window) == ("buffer_all", "all", 7200)
    assert options.misfire == "run_once"
    assert (options.jitter, options.max_runs, options.remaining_runs) == (30, 10, 10)
    assert options.pause_after_failures == 3
    assert task.start_time == datetime(2026, 4, 1, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert task.expires == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    created = AuditEntry.objects.get(periodic_task_name="full").changes
    assert created["catchup_window"] == [None, 7200]
    assert created["end_time"] == [None, "2026-05-01T09:00:00+00:00"]


def test_it_keeps_the_defaults_of_earlier_versions():
    make_schedule(name="plain")

    options = _options("plain")
    assert (options.catchup, options.catchup_window, options.misfire) == (
        "latest",
        None,
        "run_once",
    )
    assert (options.jitter, options.max_runs, options.pause_after_failures) == (0, None, None)


@pytest.mark.parametrize(
    ("given", "catchup", "window", "misfire"),
    [
        ({"misfire": "skip"}, "none", None, "skip"),
        ({"misfire": "run_once"}, "latest", None, "run_once"),
        ({"misfire": "skip", "catchup": "none"}, "none", None, "skip"),
        ({"misfire": "run_once", "catchup_window": "1h"}, "latest", 3600, "run_once"),
        ({"catchup": "none"}, "none", None, "skip"),
        ({"catchup": "latest", "catchup_window": 600}, "latest", 600, "run_once"),
        ({"catchup": "all"}, "all", None, "run_once"),
    ],
)
def test_misfire_is_a_preset_of_catchup_and_follows_it(given, catchup, window, misfire):
    make_schedule(name="created", **given)
    # Set on a schedule whose catch-up was something else.
    make_schedule(name="updated", catchup="all", catchup_window=60)
    schedule_update(name="updated", **given)

    # A preset sets the window too; catchup alone leaves the window as it was.
    kept = window if {"misfire", "catchup_window"} & set(given) else 60
    for name, expected_window in (("created", window), ("updated", kept)):
        options = _options(name)
        assert (options.catchup, options.catchup_window, options.misfire) == (
            catchup,
            expected_window,
            misfire,
        )


def test_an_update_leaves_the_policies_it_is_not_given():
    make_schedule(
        name="kept",
        catchup="none",
        catchup_window=600,
        jitter=5,
        max_runs=3,
        pause_after_failures=2,
        overlap="skip",
    )

    schedule_update(name="kept", description="only this")

    options = _options("kept")
    assert (options.catchup, options.catchup_window, options.jitter) == ("none", 600, 5)
    assert (options.max_runs, options.remaining_runs, options.pause_after_failures) == (3, 3, 2)
    assert options.overlap == "skip"


@time_machine.travel(NOW, tick=False)
def test_an_update_clears_a_limit_with_none_and_setting_max_runs_counts_again():
    make_schedule(name="limited", catchup_window=600, max_runs=3, end_time=NOW + timedelta(days=1))
    ScheduleOptions.objects.filter(periodic_task__name="limited").update(remaining_runs=1)

    schedule_update(name="limited", max_runs=5)
    assert (_options("limited").max_runs, _options("limited").remaining_runs) == (5, 5)

    schedule_update(name="limited", catchup_window=None, max_runs=None, end_time=None)

    options = _options("limited")
    assert (options.catchup_window, options.max_runs, options.remaining_runs) == (None, None, None)
    assert options.periodic_task.expires is None
    entry = AuditEntry.objects.filter(action="updated").first()
    assert entry is not None
    assert entry.changes["max_runs"] == [5, None]


@time_machine.travel(NOW, tick=False)
def test_a_new_end_is_checked_against_the_stored_start_and_the_other_way_round():
    make_schedule(name="window", start_time=NOW + timedelta(days=10))

    with pytest.raises(ScheduleError, match=r"end_time: .* is not after start_time"):
        schedule_update(name="window", end_time=NOW + timedelta(days=5))
    schedule_update(name="window", end_time=NOW + timedelta(days=20))
    with pytest.raises(ScheduleError, match=r"end_time: .* is not after start_time"):
        schedule_update(name="window", start_time=NOW + timedelta(days=30))


def test_an_end_that_has_passed_does_not_stop_other_edits():
    with time_machine.travel(NOW, tick=False):
        make_schedule(name="ended", end_time=NOW + timedelta(hours=1))

    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        schedule_update(name="ended", description="after its end")

    assert PeriodicTask.objects.get(name="ended").description == "after its end"


def test_durations_and_digits_read_as_seconds():
    make_schedule(name="text", catchup_window="1h30m", jitter=" 45 ")

    options = _options("text")
    assert (options.catchup_window, options.jitter) == (5400, 45)
