"""`manage.py scheduler create` with a schedule's policies, and `show` / `list` (and their
--json) showing them; a bad value is one line naming the field, exit status 1, nothing saved."""

from __future__ import annotations

import pytest
import time_machine
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from scheduler.models import AuditEntry
from tests.scheduler.cli.helpers import NOW, create, scheduler, scheduler_json

pytestmark = pytest.mark.django_db


@time_machine.travel(NOW, tick=False)
def test_create_takes_every_policy_and_show_gives_it_back():
    create(
        "limited",
        "every day at 9am",
        "--tz",
        "Europe/Paris",
        "--overlap",
        "cancel_other",
        "--catchup",
        "all",
        "--catchup-window",
        "1h30m",
        "--jitter",
        "45s",
        "--start",
        "2025-02-01T09:00",
        "--end",
        "2025-03-01T09:00:00+01:00",
        "--max-runs",
        "5",
        "--pause-after-failures",
        "3",
    )

    shown = scheduler_json("show", "limited", "--json")
    text = scheduler("show", "limited")
    listed = scheduler("list")

    assert shown["overlap"] == "cancel_other"
    assert (shown["catchup"], shown["catchup_window"], shown["misfire"]) == (
        "all",
        5400,
        "run_once",
    )
    assert shown["jitter"] == 45
    # Without an offset, --start is read in --tz.
    assert shown["start_time"] == "2025-02-01T08:00:00+00:00"
    assert shown["end_time"] == "2025-03-01T08:00:00+00:00"
    assert (shown["max_runs"], shown["remaining_runs"], shown["runs_left"]) == (
        5,
        5,
        "5 of 5 runs left",
    )
    assert shown["pause_after_failures"] == 3
    assert "catch-up:    all, within 1h30m" in text
    assert "jitter:      up to 45s after each due time" in text
    assert "starts:      2025-02-01 09:00:00 CET" in text
    assert "runs left:   5 of 5 runs left" in text
    assert "pause:       after 3 failed runs in a row" in text
    header, row = listed.splitlines()[:2]
    assert "CATCH-UP" in header
    assert "RUNS LEFT" in header
    assert "all, within 1h30m" in row
    assert "5 of 5 runs left" in row


def test_the_misfire_preset_still_works():
    create("preset", "0 9 * * *", "--misfire", "skip")

    shown = scheduler_json("list", "--json")[0]

    assert (shown["catchup"], shown["catchup_window"], shown["misfire"]) == ("none", None, "skip")
    assert shown["catchup_summary"] == "none"


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--catchup-window", "-1"), "catchup_window: -1 is less than 1"),
        (("--catchup-window", "later"), "catchup_window: 'later' is not a duration"),
        (("--catchup", "sometimes"), "catchup: 'sometimes' is not one of none, latest, all"),
        (("--overlap", "queue"), "overlap: 'queue' is not one of allow, skip, buffer_one"),
        (("--jitter", "2h"), "jitter: 7200 seconds is more than the limit, 3600 seconds"),
        (("--max-runs", "0"), "max_runs: 0 would never let it run"),
        (
            ("--start", "2025-03-01T00:00Z", "--end", "2025-02-01T00:00Z"),
            "end_time: 2025-02-01T00:00:00+00:00 is not after start_time",
        ),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field_and_nothing_is_saved(flags, says):
    with pytest.raises(CommandError) as caught:
        create("bad", "0 9 * * *", *flags)

    assert says in str(caught.value)
    assert not PeriodicTask.objects.exists()
    assert not AuditEntry.objects.exists()


def test_it_shows_no_limits_when_none_are_set():
    create("plain", "0 9 * * *")

    text = scheduler("show", "plain")
    shown = scheduler_json("show", "plain", "--json")

    assert "catch-up:    latest, however late" in text
    assert "runs left:   no limit" in text
    assert "pause:       never" in text
    assert (shown["max_runs"], shown["runs_left"], shown["start_time"], shown["end_time"]) == (
        None,
        None,
        None,
        None,
    )
