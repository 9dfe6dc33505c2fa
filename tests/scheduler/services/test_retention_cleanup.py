"""History retention's daily task (`scheduler.cleanup_results`): it applies every table's setting
(its own days to results and events only) and reports what is left when its time is up; and the
schedule the migration creates for it, as the service would make it, never brought back once
deleted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult

from scheduler.catalog import catalog
from scheduler.devstack.demo import CLEANUP_NAME
from scheduler.models import AuditEntry, ScheduleOptions
from scheduler.selectors import schedule_next_run
from scheduler.services import schedule_create
from scheduler.services.retention import CLEANUP_SCHEDULE_NAME
from scheduler.system import tasks
from scheduler.system.tasks import cleanup_results
from tests.scheduler.services.helpers import DAY, NOW, ages, audit, event, result

pytestmark = pytest.mark.django_db


# --- the cleanup task --------------------------------------------------------------------------


def test_the_cleanup_task_applies_every_tables_setting(retention_settings):
    with time_machine.travel(NOW, tick=False):
        result(11 * DAY)
        event(21 * DAY)
        audit(31 * DAY)
        audit(29 * DAY)

        outcome = cleanup_results()

    assert outcome["tables"]["task results"] == 1
    assert outcome["tables"]["task events"] == 1
    assert outcome["tables"]["audit entries"] == 1
    assert outcome["deleted"] == 3
    assert outcome["complete"] is True
    assert ages(AuditEntry, "created_at") == [29]


def test_the_cleanup_tasks_days_apply_to_results_and_events_only(retention_settings):
    with time_machine.travel(NOW, tick=False):
        result(3 * DAY)
        event(3 * DAY)
        audit(3 * DAY)

        outcome = cleanup_results(days=2, batch_size=1)

    assert outcome["tables"]["task results"] == 1
    assert outcome["tables"]["task events"] == 1
    assert outcome["tables"]["audit entries"] == 0
    assert AuditEntry.objects.count() == 1


def test_the_cleanup_task_reports_what_is_left_when_its_time_is_up(retention_settings, monkeypatch):
    monkeypatch.setattr(tasks, "CLEANUP_TIME_BUDGET", 0)
    with time_machine.travel(NOW, tick=False):
        result(11 * DAY)

        outcome = cleanup_results()

    assert outcome["complete"] is False
    assert TaskResult.objects.count() == 1


def test_the_cleanup_params_default_to_the_settings():
    entry = catalog.get("scheduler.cleanup_results")

    assert entry.validate({}) == {"days": None, "batch_size": None}
    assert entry.validate({"days": 7, "batch_size": 500}) == {"days": 7, "batch_size": 500}


# --- scheduled by default ----------------------------------------------------------------------
# `cleanup_schedule` (tests/conftest.py) is the row the migration made; other tests go without.


def test_migrate_schedules_the_cleanup_daily_at_half_past_three_utc(cleanup_schedule):
    entry = catalog.get("scheduler.cleanup_results")
    params = json.loads(cleanup_schedule.kwargs)

    assert CLEANUP_NAME == CLEANUP_SCHEDULE_NAME
    assert cleanup_schedule.task == "scheduler.cleanup_results"
    assert cleanup_schedule.enabled
    assert entry.validate(params) == params
    assert cleanup_schedule.queue == entry.queue == "maintenance"
    # The task's default (migration 0006), which the catalog declares as skip.
    assert (cleanup_schedule.options.overlap, entry.overlap) == ("default", "skip")
    assert schedule_next_run(cleanup_schedule, now=NOW) == datetime(2026, 3, 11, 3, 30, tzinfo=UTC)


def test_the_migrations_schedule_is_the_one_the_service_would_make(cleanup_schedule):
    made = schedule_create(
        name="copy",
        task="scheduler.cleanup_results",
        schedule=cleanup_schedule.options.phrase,
        tz="UTC",
        description=cleanup_schedule.description,
    )
    made = PeriodicTask.objects.select_related("options").get(pk=made.pk)
    skipped = {"id", "name", "date_changed"}

    def columns(task: PeriodicTask) -> dict[str, Any]:
        return {
            field.attname: getattr(task, field.attname)
            for field in PeriodicTask._meta.concrete_fields
            if field.attname not in skipped
        }

    def options(task: PeriodicTask) -> dict[str, Any]:
        row = ScheduleOptions.objects.get(periodic_task=task)
        return {"phrase": row.phrase, "timezone": row.timezone, "overlap": row.overlap}

    assert columns(made) == columns(cleanup_schedule)  # the same crontab row, reused
    assert options(made) == options(cleanup_schedule)


def test_migrating_again_does_not_bring_back_a_deleted_cleanup(cleanup_schedule):
    cleanup_schedule.delete()

    call_command("migrate", verbosity=0)

    assert not PeriodicTask.objects.filter(name=CLEANUP_SCHEDULE_NAME).exists()


def test_seed_demo_keeps_the_migrations_cleanup_and_makes_no_second_one(cleanup_schedule):
    call_command("seed_demo", stdout=StringIO())

    cleanups = PeriodicTask.objects.filter(task="scheduler.cleanup_results")
    assert list(cleanups.values_list("pk", flat=True)) == [cleanup_schedule.pk]
