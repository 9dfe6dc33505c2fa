"""`manage.py scheduler history|clear-history`: stored results filtered, printed as a table, in
detail and as JSON, cleared only when confirmed, and shown in the zone asked for (`--tz`, then
the shell's TZ).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery import states
from django.core.management.base import CommandError
from django_celery_results.models import TaskResult

from tests.factories import stored_run
from tests.processes import child_env, run_manage
from tests.scheduler.cli.helpers import NOW, scheduler, scheduler_json, stored_result

# --- history and clear-history -------------------------------------------------------------------


STATUS_NAMES = [
    ("failed", "FAILURE"),
    ("FAILURE", "FAILURE"),
    ("Failure", "FAILURE"),
    ("error", "FAILURE"),
    ("success", "SUCCESS"),
    ("completed", "SUCCESS"),
    ("Succeeded", "SUCCESS"),
    ("running", "STARTED"),
    ("retry", "RETRY"),
    ("cancelled", "REVOKED"),
    ("skipped", "SKIPPED"),
    ("pending", "PENDING"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "status"), STATUS_NAMES)
def test_it_filters_history_by_status_in_any_spelling(name, status):
    for each in ("FAILURE", "SUCCESS", "STARTED", "RETRY", "REVOKED", "SKIPPED", "PENDING"):
        stored_result(status=each, task_id=f"task-{each}")

    rows = scheduler_json("history", "--status", name, "--format", "json")

    assert [row["task_id"] for row in rows] == [f"task-{status}"]


@pytest.mark.django_db
def test_it_filters_history_by_task_periodic_task_since_and_limit():
    stored_result(task_id="old", periodic_task_name="nightly", done=NOW - timedelta(days=3))
    stored_result(task_id="new", periodic_task_name="nightly", done=NOW)
    stored_result(task_id="other-task", task_name="scheduler.health_check", done=NOW)

    by_task = scheduler_json("history", "--task-name", "scheduler.health_check", "--format", "json")
    by_periodic = scheduler_json("history", "--periodic-task", "nightly", "--format", "json")
    since = scheduler_json("history", "--since", "2025-01-14", "--format", "json")
    limited = scheduler_json(
        "history", "--periodic-task", "nightly", "--limit", "1", "--format", "json"
    )

    assert [row["task_id"] for row in by_task] == ["other-task"]
    assert [row["task_id"] for row in by_periodic] == ["new", "old"]
    assert {row["task_id"] for row in since} == {"new", "other-task"}
    assert [row["task_id"] for row in limited] == ["new"]


@pytest.mark.django_db
def test_it_prints_history_as_a_table_in_detail_and_as_json():
    stored_result(
        task_id="t-1",
        status=states.FAILURE,
        periodic_task_name="nightly",
        done=NOW,
        result='{"exc_type": "ValueError", "exc_message": ["boom"]}',
        traceback="Traceback (most recent call last):\nValueError: boom",
    )

    table = scheduler("history")
    detailed = scheduler("history", "--format", "detailed")
    (row,) = scheduler_json("history", "--format", "json")

    assert table.splitlines()[0].split()[:2] == ["DONE", "STATUS"]
    assert "FAILURE" in table
    assert "nightly" in table
    assert "2.00 s" in table
    assert "t-1  FAILURE" in detailed
    assert "    ValueError: boom" in detailed
    assert row["result"] == {"exc_type": "ValueError", "exc_message": ["boom"]}
    assert row["duration_seconds"] == 2.0
    assert row["args"] == []
    assert row["kwargs"] == {"days": 3}
    assert row["date_done"] == "2025-01-15T08:00:00+00:00"
    assert scheduler("history", "--status", "success").strip() == "No task results."


@pytest.mark.django_db
def test_it_clears_history_only_when_confirmed_and_keeps_recent_rows_when_asked():
    stored_result(task_id="old", done=NOW - timedelta(days=10))
    stored_result(task_id="new")

    with pytest.raises(CommandError):
        scheduler("clear-history", "--older-than", "5")
    kept = scheduler("clear-history", "--confirm", "--older-than", "5")

    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["new"]
    assert "older than 5 days" in kept
    scheduler("clear-history", "--confirm")
    assert not TaskResult.objects.exists()


# --- the zone times are shown in -----------------------------------------------------------------


@pytest.mark.django_db
def test_it_shows_history_in_tz_then_the_environments_zone(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    stored_run(
        "zoned-run",
        status="SUCCESS",
        task_name="scheduler.ping",
        started=datetime(2026, 7, 1, 11, 59, 58, tzinfo=UTC),
        done=datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC),
    )

    assert "2026-07-01 12:00:00 UTC" in scheduler("history")
    assert "2026-07-01 21:00:00 JST" in scheduler("history", "--tz", "Asia/Tokyo")
    monkeypatch.setenv("TZ", "America/New_York")
    assert "2026-07-01 08:00:00 EDT" in scheduler("history")
    assert "2026-07-01 21:00:00 JST" in scheduler("history", "--tz", "Asia/Tokyo")
    # A naive --since is read in the same zone: 08:00 in New York is 12:00 UTC.
    assert "zoned-run" in scheduler("history", "--since", "2026-07-01T08:00")
    assert "zoned-run" not in scheduler("history", "--since", "2026-07-01T08:00:01")


@pytest.mark.django_db
def test_it_refuses_an_unknown_display_zone_with_a_non_zero_exit(monkeypatch):
    with pytest.raises(CommandError, match="--tz: unknown time zone 'Mars/Olympus'"):
        scheduler("status", "--tz", "Mars/Olympus")


@pytest.mark.django_db(transaction=True)
def test_it_shows_times_in_the_shells_tz_although_django_sets_tz_to_time_zone():
    stored_run(
        "shell-zoned-run",
        status="SUCCESS",
        task_name="scheduler.ping",
        started=datetime(2026, 7, 1, 11, 59, 58, tzinfo=UTC),
        done=datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC),
    )

    tokyo = run_manage(
        "scheduler", "history", env=child_env(TZ="Asia/Tokyo", SCHEDULER_CALLER_TZ=None)
    )
    plain = run_manage("scheduler", "history", env=child_env(TZ=None, SCHEDULER_CALLER_TZ=None))

    assert tokyo.returncode == 0, tokyo.stderr
    assert "2026-07-01 21:00:00 JST" in tokyo.stdout
    assert "2026-07-01 12:00:00 UTC" in plain.stdout
