"""Durations as staff type them (scheduler/core/durations.py): read, and written back."""

from __future__ import annotations

import pytest

from scheduler.core.durations import duration_seconds, duration_written

READ = [
    ("0", 0),
    ("600", 600),
    ("30s", 30),
    ("10m", 600),
    ("2h", 7200),
    ("1d", 86400),
    ("1h30m", 5400),
    (" 1h 30m ", 5400),
    ("2H", 7200),
    ("1d2h3m4s", 93784),
]


@pytest.mark.parametrize(("text", "seconds"), READ)
def test_it_reads_a_duration(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "1.5h", "10 minutes", "h", "5m-", "9" * 13])
def test_it_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="is not a duration"):
        duration_seconds(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, ""), (0, "0"), (45, "45s"), (5400, "1h30m"), (90061, "1d1h1m1s")]
)
def test_it_writes_a_duration_back_as_it_is_read(seconds, text):
    assert duration_written(seconds) == text
    if seconds is not None:
        assert duration_seconds(text) == seconds
