"""`manage.py scheduler create|list|show|enable|disable|delete`: periodic tasks made and changed
through the service with their audit trail, the task's default overlap policy, and periodic
tasks outside the catalog.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.management.base import CommandError
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduler.catalog import load_catalog
from scheduler.models import AuditEntry, Source
from tests.scheduler.cli.helpers import NOW, create, scheduler, scheduler_json, stored_result

# --- create, list, show --------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_creates_the_seed_examples_as_written():
    create("daily_tech_news", "0 9 * * *")
    scheduler("create", "backup", "every day at 2am", "--task", "scheduler.ping")

    news = PeriodicTask.objects.get(name="daily_tech_news")
    backup = PeriodicTask.objects.get(name="backup")
    assert news.crontab is not None
    assert backup.crontab is not None
    assert (news.crontab.minute, news.crontab.hour) == ("0", "9")
    assert (backup.crontab.minute, backup.crontab.hour) == ("0", "2")
    assert news.task == backup.task == "scheduler.ping"
    assert news.enabled
    assert backup.enabled
    assert AuditEntry.objects.filter(source=Source.CLI, action="created").count() == 2


CREATE_PHRASES = [
    ("every 30 seconds", "interval"),
    ("every 2 hours", "interval"),
    ("hourly", "crontab"),
    ("every weekend at 10am", "crontab"),
    ("every month on the 1st at 9am", "crontab"),
    ("*/15 * * * *", "crontab"),
    ("in 5 minutes", "clocked"),
    ("next monday at 8am", "clocked"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("phrase", "kind"), CREATE_PHRASES)
def test_it_creates_from_the_same_phrases_parse_reads(phrase, kind):
    expected = scheduler_json("parse", phrase, "--json")

    create("job", phrase)

    row = PeriodicTask.objects.get(name="job")
    assert expected["kind"] == kind
    assert getattr(row, kind) is not None
    assert row.one_off is (kind == "clocked")


@pytest.mark.django_db
def test_it_creates_with_every_option():
    output = scheduler(
        "create",
        "cleanup",
        "every day at 3am",
        "--task",
        "scheduler.cleanup_results",
        "--params",
        '{"days": 7}',
        "--queue",
        "default",
        "--tz",
        "Europe/Paris",
        "--description",
        "keep a week",
        "--overlap",
        "skip",
        "--misfire",
        "skip",
        "--disabled",
    )

    shown = scheduler_json("show", "cleanup", "--json")
    assert "Created 'cleanup' (disabled)" in output
    assert shown["params"]["days"] == 7
    assert shown["queue"] == "default"
    assert shown["timezone"] == "Europe/Paris"
    assert shown["description"] == "keep a week"
    assert (shown["overlap"], shown["misfire"]) == ("skip", "skip")
    assert shown["enabled"] is False
    assert shown["next_runs"] == []  # disabled: beat will not run it


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_lists_periodic_tasks_filtered_by_state():
    create("a_on", "every 5 minutes")
    create("b_off", "0 9 * * *", "--disabled")

    everything = scheduler("list")
    enabled = scheduler_json("list", "--enabled", "--json")
    disabled = scheduler_json("list", "--disabled", "--json")

    header = everything.splitlines()[0]
    assert header.split()[:4] == ["NAME", "ENABLED", "TASK", "SCHEDULE"]
    assert "NEXT RUN" in header
    assert "a_on" in everything
    assert "b_off" in everything
    assert [row["name"] for row in enabled] == ["a_on"]
    assert [row["name"] for row in disabled] == ["b_off"]
    assert enabled[0]["next_runs"] == ["2025-01-15T08:05:00+00:00"]
    assert enabled[0]["schedule"] == "every 5 minutes"


@pytest.mark.django_db
def test_it_says_so_when_there_is_nothing_to_list():
    assert scheduler("list").strip() == "No periodic tasks."
    assert scheduler_json("list", "--json") == []


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_shows_fields_next_runs_last_runs_and_the_audit_trail():
    create("weekly", "every monday at 8am", "--tz", "America/New_York")
    scheduler("disable", "weekly")
    scheduler("enable", "weekly")
    stored_result(periodic_task_name="weekly", task_id="run-1", done=NOW - timedelta(days=1))
    stored_result(periodic_task_name="other", task_id="run-2")

    output = scheduler("show", "weekly")
    document = scheduler_json("show", "weekly", "--json")

    assert "schedule:    every monday at 8am  (At 08:00, only on Monday)" in output
    assert "time zone:   America/New_York" in output
    assert "2025-01-20 08:00:00 EST  (Mon)" in output
    assert "run-1" in output
    assert "run-2" not in output
    assert "created  via cli" in output
    assert document["next_runs"] == [
        "2025-01-20T08:00:00-05:00",
        "2025-01-27T08:00:00-05:00",
        "2025-02-03T08:00:00-05:00",
        "2025-02-10T08:00:00-05:00",
        "2025-02-17T08:00:00-05:00",
    ]
    assert [entry["action"] for entry in document["audit"]] == ["enabled", "disabled", "created"]
    assert {entry["source"] for entry in document["audit"]} == {"cli"}
    assert [result["task_id"] for result in document["last_results"]] == ["run-1"]


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_shows_a_relative_one_off_at_the_time_it_was_created_for():
    create("soon", "in 5 minutes")

    with time_machine.travel(NOW + timedelta(minutes=3), tick=False):
        document = scheduler_json("show", "soon", "--json")

    assert document["next_runs"] == ["2025-01-15T08:05:00+00:00"]
    assert "08:05" in document["schedule_description"]


# --- enable, disable, delete ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_disables_and_enables_through_the_service():
    create("job")

    first = scheduler("disable", "job")
    again = scheduler("disable", "job")
    assert PeriodicTask.objects.get(name="job").enabled is False
    scheduler("enable", "job")

    assert first.strip() == "Disabled 'job'."
    assert again.strip() == "'job' is already disabled."
    assert PeriodicTask.objects.get(name="job").enabled is True
    actions = AuditEntry.objects.filter(periodic_task_name="job", source=Source.CLI)
    assert list(actions.values_list("action", flat=True)) == ["enabled", "disabled", "created"]


@pytest.mark.django_db
def test_it_deletes_and_keeps_the_audit_trail():
    create("job")

    output = scheduler("delete", "job")

    assert output.strip() == "Deleted 'job'."
    assert not PeriodicTask.objects.filter(name="job").exists()
    assert AuditEntry.objects.filter(periodic_task_name="job", action="deleted").exists()


# --- The task's default overlap policy; periodic tasks outside the catalog -----------------------


@pytest.mark.django_db
def test_it_creates_a_schedule_following_the_tasks_overlap_policy_and_shows_it():
    scheduler("create", "napper", "every hour", "--task", "scheduler.sleep", "--overlap", "default")
    policy = load_catalog().get("scheduler.sleep").overlap.value
    shown = scheduler_json("show", "napper", "--json")
    text = scheduler("show", "napper")

    assert (shown["overlap"], shown["overlap_effective"]) == ("default", policy)
    assert f"overlap:     default (currently: {policy})" in text


def _outside_catalog(*, enabled: bool = False) -> PeriodicTask:
    interval = IntervalSchedule.objects.create(every=1, period="days")
    return PeriodicTask.objects.create(
        name="legacy", task="billing.send_invoices", interval=interval, enabled=enabled
    )


@pytest.mark.django_db
def test_it_refuses_to_enable_a_periodic_task_outside_the_catalog():
    _outside_catalog()

    with pytest.raises(CommandError, match="which is outside the catalog: it can be disabled"):
        scheduler("enable", "legacy")

    assert not PeriodicTask.objects.get(name="legacy").enabled


@pytest.mark.django_db
def test_it_lists_shows_and_disables_a_periodic_task_outside_the_catalog():
    _outside_catalog(enabled=True)

    listed = scheduler("list")
    (row,) = scheduler_json("list", "--json")
    shown = scheduler("show", "legacy")
    scheduler("disable", "legacy")

    assert "billing.send_invoices (outside the catalog)" in listed
    assert (row["task"], row["in_catalog"]) == ("billing.send_invoices", False)
    assert "task:        billing.send_invoices (outside the catalog)" in shown
    assert not PeriodicTask.objects.get(name="legacy").enabled
