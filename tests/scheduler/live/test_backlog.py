"""The backfill's read by type patterns: along the index on type, learning custom types from a
bounded window of the latest events, never by searching the log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduler.live import backlog
from scheduler.live.backlog import events_recent
from scheduler.live.events import event_record

pytestmark = pytest.mark.django_db


def _log(*types: str) -> None:
    start = timezone.now() - timedelta(hours=1)
    for n, kind in enumerate(types):
        event_record(type=kind, task_id=f"{kind}-{n}", at=start + timedelta(seconds=n))


def _types(**filters: object) -> list[str]:
    return [event["type"] for event in events_recent(**filters)]  # type: ignore[arg-type]


def test_ours_and_exact_custom_types_are_read_by_type_however_old(
    monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(backlog, "TYPE_WINDOW", 2)
    _log("report.old", "task.failed", "schedule.created", "x.a", "x.b", "x.c")

    with django_assert_num_queries(1):
        found = _types(type_patterns=("report.old", "task.*"))

    # "task.*" is "task.created" too, the seed's name of a new schedule.
    assert found == ["report.old", "task.failed", "schedule.created"]


def test_a_glob_over_custom_types_learns_them_from_the_latest_events(
    monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(backlog, "TYPE_WINDOW", 3)
    _log("report.old", "report.new", "task.failed", "report.new", "session.message")

    with django_assert_num_queries(2):
        found = _types(type_patterns=("report.*",))

    # report.old is past the window of 3: only the types seen there are read, all their rows.
    assert found == ["report.new", "report.new"]


def test_the_window_follows_the_other_filters():
    _log("report.a", "report.b")
    event_record(type="report.c", object_type="tournament", object_id=7)

    assert _types(type_patterns=("report.*",), object_type="tournament", object_id="7") == [
        "report.c"
    ]
    assert _types(type_patterns=("report.*",), limit=2) == ["report.b", "report.c"]
