"""Where staff see history retention: the overview of each table's rows, oldest row, retention and
next cleanup, `scheduler status` (a line per table), and the admin's index page for whoever may
view task results.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django_celery_beat.models import PeriodicTask

from scheduler.services import retention, schedule_create, schedule_disable
from scheduler.services.retention import (
    CLEANUP_SCHEDULE_NAME,
    retention_overview,
    retention_policies,
)
from tests.factories import user_with
from tests.scheduler.services.helpers import DAY, NOW, event, result

pytestmark = pytest.mark.django_db


# --- what staff see ----------------------------------------------------------------------------


@pytest.mark.usefixtures("cleanup_schedule")
def test_the_overview_gives_each_tables_rows_oldest_retention_and_next_cleanup(
    retention_settings,
):
    result(3 * DAY)
    result(12 * DAY)
    event(DAY)

    overview = {row.label: row for row in retention_overview(now=NOW)}

    results = overview["task results"]
    assert (results.rows, results.rows_estimated) == (2, False)
    assert results.oldest == NOW - 12 * DAY
    assert (results.days, results.kept) == (10, "10 days")
    assert results.next_cleanup == datetime(2026, 3, 11, 3, 30, tzinfo=UTC)
    assert results.cleanup_schedule == CLEANUP_SCHEDULE_NAME
    assert overview["task events"].rows == 1
    assert overview["agent messages"].kept == "forever"
    assert (overview["agent messages"].rows, overview["agent messages"].oldest) == (0, None)
    assert overview["tournament decisions"].kept == "90 days after the tournament ended"
    assert results.as_dict()["next_cleanup"] == "2026-03-11T03:30:00+00:00"


def test_the_overview_estimates_the_rows_of_a_large_table(retention_settings, monkeypatch):
    monkeypatch.setattr(retention, "EXACT_COUNT_UP_TO", 2)
    for days in range(5):
        result(days * DAY)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE django_celery_results_taskresult")

    row = next(row for row in retention_overview(now=NOW) if row.label == "task results")

    assert row.rows_estimated
    assert row.rows == 5  # reltuples after ANALYZE, or the span of ids
    assert row.rows_text == "~5"


@pytest.mark.usefixtures("cleanup_schedule")
def test_the_overview_shows_the_days_the_next_cleanup_runs_with(retention_settings):
    schedule_disable(name=CLEANUP_SCHEDULE_NAME)
    assert retention_overview(now=NOW)[0].next_cleanup is None
    schedule_create(
        name="weekly cleanup",
        task="scheduler.cleanup_results",
        schedule="every monday at 4am",
        params={"days": 7},
    )

    overview = {row.label: row for row in retention_overview(now=NOW)}

    assert overview["task results"].days == 7
    assert overview["task events"].days == 7
    assert overview["audit entries"].days == 30
    assert overview["task results"].next_cleanup == datetime(2026, 3, 16, 4, 0, tzinfo=UTC)
    assert overview["task results"].cleanup_schedule == "weekly cleanup"


@pytest.mark.usefixtures("cleanup_schedule")
def test_scheduler_status_has_a_line_per_table(retention_settings):
    result(3 * DAY)
    stdout = StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("scheduler", "status", stdout=stdout)
        call_command("scheduler", "status", "--json", stdout=(document := StringIO()))

    lines = stdout.getvalue().splitlines()
    assert "Retention:       next cleanup 2026-03-11 03:30:00 UTC" in lines
    header = lines.index("Retention:       next cleanup 2026-03-11 03:30:00 UTC") + 1
    assert lines[header].split() == ["TABLE", "ROWS", "OLDEST", "KEPT"]
    table = lines[header + 1 : header + 1 + len(retention_policies())]
    assert table[0].split() == [
        "task",
        "results",
        "1",
        "2026-03-07",
        "12:00:00",
        "UTC",
        "10",
        "days",
    ]
    dead_letters = next(line for line in table if line.startswith("dead letters"))
    assert dead_letters.endswith("30 days after they were requeued or discarded")
    assert next(line for line in table if line.startswith("agent messages")).endswith("forever")
    report = json.loads(document.getvalue())["retention"]
    assert report["next_cleanup"] == "2026-03-11T03:30:00+00:00"
    assert report["tables"][0] == {
        "table": "task results",
        "retention_days": 10,
        "scope": "",
        "rows": 1,
        "rows_estimated": False,
        "oldest": "2026-03-07T12:00:00+00:00",
        "next_cleanup": "2026-03-11T03:30:00+00:00",
        "cleanup_schedule": CLEANUP_SCHEDULE_NAME,
    }


def test_scheduler_status_says_when_no_cleanup_is_scheduled():
    stdout = StringIO()

    call_command("scheduler", "status", stdout=stdout)

    assert (
        "Retention:       next cleanup not scheduled "
        "(no enabled schedule of scheduler.cleanup_results)"
    ) in stdout.getvalue().splitlines()


@pytest.fixture
def admin_index() -> Any:
    def get(user: Any) -> str:
        client = Client()
        client.force_login(user)
        response = client.get("/admin/")
        assert response.status_code == 200
        return response.content.decode()

    return get


@pytest.mark.usefixtures("cleanup_schedule")
def test_the_admin_index_shows_the_retention_to_a_superuser(admin_index, retention_settings):
    result(3 * DAY)

    page = admin_index(user_with(superuser=True))

    assert "History retention" in page
    assert "Task results" in page
    assert "10 days" in page
    assert "Next cleanup:" in page
    cleanup = PeriodicTask.objects.get(name=CLEANUP_SCHEDULE_NAME)
    assert f"/admin/django_celery_beat/periodictask/{cleanup.pk}/change/" in page
    assert "Site administration" in page  # still Django's own index around it


def test_the_admin_index_shows_it_only_to_who_may_view_task_results(admin_index):
    assert "History retention" not in admin_index(user_with("scheduler.view_auditentry"))
    assert "History retention" in admin_index(user_with("django_celery_results.view_taskresult"))
