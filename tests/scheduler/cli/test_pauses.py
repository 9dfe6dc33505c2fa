"""`manage.py scheduler pause|resume|pause-on-failure`: a pause with why and until when, shown
back by `list` and `show` (and their JSON); an end in the past refused naming --until."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.core.management.base import CommandError

from scheduler.cli.actor import os_user
from scheduler.models import AuditEntry
from scheduler.schedules import pause_of
from scheduler.services import schedule_get
from tests.scheduler.cli.helpers import create, scheduler, scheduler_json

pytestmark = pytest.mark.django_db


def test_it_pauses_with_a_note_and_an_end_shown_by_list_and_show():
    create("nightly", "every 5 minutes")

    said = scheduler("pause", "nightly", "--note", "deploy freeze", "--until", "2h")

    # Paused by the OS user who ran the command (no Django user: --as was not given).
    assert said.startswith(f"Paused 'nightly': by {os_user()} until ")
    assert said.rstrip().endswith(": deploy freeze.")
    listing = scheduler("list")
    row = next(line for line in listing.splitlines() if line.startswith("nightly"))
    assert " paused " in row
    assert " until " in row
    shown = scheduler("show", "nightly")
    assert "enabled:     paused" in shown
    assert f"paused:      by {os_user()} until " in shown
    assert shown.split("paused:")[1].splitlines()[0].endswith(": deploy freeze")
    [listed] = scheduler_json("list", "--json")
    assert listed["enabled"] is False
    assert listed["pause"]["note"] == "deploy freeze"
    assert listed["pause"]["paused_by"] == os_user()
    until = datetime.fromisoformat(listed["pause"]["until"])
    assert until == pause_of(schedule_get("nightly")).until  # type: ignore[union-attr]
    assert scheduler_json("show", "nightly", "--json")["pause"] == listed["pause"]
    assert AuditEntry.objects.get(action="paused").changes["pause_note"] == ["", "deploy freeze"]


def test_it_reads_an_end_without_an_offset_in_the_tz_given():
    create("nightly", "every 5 minutes")

    scheduler("pause", "nightly", "--until", "2099-06-01 09:00", "--tz", "Europe/Paris")

    pause = pause_of(schedule_get("nightly"))
    assert pause is not None
    assert pause.until is not None
    assert pause.until.isoformat() == "2099-06-01T07:00:00+00:00"


@pytest.mark.parametrize(
    ("until", "says"),
    [
        ("2020-01-01 09:00", "until: 2020-01-01T09:00:00"),
        ("later", "until: 'later' is neither a duration"),
    ],
)
def test_it_refuses_an_end_in_the_past_naming_until(until, says):
    create("nightly", "every 5 minutes")

    with pytest.raises(CommandError) as raised:
        scheduler("pause", "nightly", "--until", until)

    assert says in str(raised.value)
    assert schedule_get("nightly").enabled


def test_it_resumes_and_says_the_next_run():
    create("nightly", "every 5 minutes")
    scheduler("pause", "nightly", "--note", "x")

    said = scheduler("resume", "nightly")
    again = scheduler("resume", "nightly")

    assert said.startswith("Resumed 'nightly'. Next run: ")
    assert again == "'nightly' is not paused.\n"
    assert scheduler_json("show", "nightly", "--json")["pause"] is None
    assert scheduler_json("show", "nightly", "--json")["enabled"] is True


def test_it_sets_and_clears_pause_on_failure():
    create("nightly", "every 5 minutes")

    said = scheduler("pause-on-failure", "nightly", "3")
    shown = scheduler("show", "nightly")
    off = scheduler("pause-on-failure", "nightly", "off")

    assert said == "'nightly' pauses itself after 3 failed runs in a row.\n"
    assert "pause after: 3 failed runs in a row (0 so far)" in shown
    assert off == "'nightly' no longer pauses itself after failed runs.\n"
    assert scheduler_json("show", "nightly", "--json")["pause_after_failures"] is None


@pytest.mark.parametrize(
    ("count", "says"),
    [("many", "count 'many' is not a number"), ("5000", "pause_after_failures: 5000 is not")],
)
def test_it_refuses_a_count_that_is_not_one(count, says):
    create("nightly", "every 5 minutes")

    with pytest.raises(CommandError, match=says):
        scheduler("pause-on-failure", "nightly", count)
