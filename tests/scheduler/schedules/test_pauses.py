"""When a pause ends as staff write it ("2h", a date and time), and the pause as every display
shows it (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.schedules.pauses import Pause, PauseUntilError, pause_until_read

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2h", "UTC", NOW + timedelta(hours=2)),
        ("30m", "UTC", NOW + timedelta(minutes=30)),
        ("1d", "UTC", NOW + timedelta(days=1)),
        ("1h30m", "UTC", NOW + timedelta(minutes=90)),
        (" 90 ", "UTC", NOW + timedelta(seconds=90)),
        ("2027-03-01T12:00:00+00:00", "UTC", datetime(2027, 3, 1, 12, 0, tzinfo=UTC)),
        # Without an offset: read in the zone given (Paris is UTC+1 in March).
        ("2027-03-01 12:00", "Europe/Paris", datetime(2027, 3, 1, 11, 0, tzinfo=UTC)),
        ("2027-03-02", "UTC", datetime(2027, 3, 2, 0, 0, tzinfo=UTC)),
    ],
)
def test_it_reads_a_duration_or_a_date_and_time(text, tz, expected):
    assert pause_until_read(text, now=NOW, tz=tz) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2027-03-01 07:59", "is in the past: a pause ends in the future"),
        ("2027-03-01T08:00:00+00:00", "is in the past"),
        ("0", "is in the past"),
        ("yesterday", "is neither a duration (30m, 2h, 1d, 1h30m) nor a date and time"),
        ("-2h", "is neither a duration"),
        ("", "write a duration (2h) or a date and time"),
        ("999999999999d", "is too far ahead"),
    ],
)
def test_it_refuses_an_end_that_is_not_ahead_saying_why(text, says):
    with pytest.raises(PauseUntilError, match=says.replace("(", r"\(").replace(")", r"\)")):
        pause_until_read(text, now=NOW, tz="UTC")


def test_it_refuses_an_unknown_zone_for_a_time_without_an_offset():
    with pytest.raises(PauseUntilError, match="Mars/Olympus"):
        pause_until_read("2027-03-01 12:00", now=NOW, tz="Mars/Olympus")


@pytest.mark.parametrize(
    ("pause", "zone", "text"),
    [
        (
            Pause(at=NOW, by="alice", note="deploy freeze", until=NOW + timedelta(hours=2)),
            PARIS,
            "paused by alice until 2027-03-01 11:00 CET: deploy freeze",
        ),
        (
            Pause(at=NOW, by=None, note="paused after 3 failed runs in a row", until=None),
            None,
            "paused until resumed: paused after 3 failed runs in a row",
        ),
        (Pause(at=NOW, by="bob", note="", until=None), None, "paused by bob until resumed"),
    ],
)
def test_it_says_who_paused_it_until_when_and_why(pause, zone, text):
    assert pause.text(zone) == text


def test_its_json_carries_every_part_in_iso_8601():
    pause = Pause(at=NOW, by="alice", note="why", until=NOW + timedelta(hours=1))

    assert pause.as_dict() == {
        "paused_at": "2027-03-01T08:00:00+00:00",
        "paused_by": "alice",
        "note": "why",
        "until": "2027-03-01T09:00:00+00:00",
    }
