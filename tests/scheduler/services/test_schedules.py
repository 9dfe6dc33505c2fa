"""The schedule services: every way in (admin, CLI, API) saves through these."""

from __future__ import annotations

import dataclasses
import importlib
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import time_machine
from django.apps import apps as django_apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from scheduler.catalog import catalog, overlap_policy_of
from scheduler.models import AuditEntry, ScheduleOptions, Source, TaskEvent
from scheduler.schedules import schedule_describe
from scheduler.schedules.policies import OverlapPolicy
from scheduler.services import (
    ScheduleError,
    ScheduleNotFound,
    history_clear,
    params_from_json,
    schedule_create,
    schedule_delete,
    schedule_disable,
    schedule_enable,
    schedule_run_now,
    schedule_set_enabled_bulk,
    schedule_update,
    stored_kwargs,
    task_enqueue,
)
from tests.factories import TaskResultFactory, UserFactory, make_schedule

pytestmark = pytest.mark.django_db


def _rows() -> tuple[int, int, int, int, int]:
    return (
        PeriodicTask.objects.count(),
        ScheduleOptions.objects.count(),
        AuditEntry.objects.count(),
        IntervalSchedule.objects.count() + CrontabSchedule.objects.count(),
        ClockedSchedule.objects.count(),
    )


def test_it_creates_an_interval_schedule_with_options_audit_and_event():
    user = UserFactory.create()

    task = schedule_create(
        name="pinger",
        task="scheduler.ping",
        schedule="every 30 seconds",
        actor=user,
        source=Source.CLI,
        description="keeps the lights on",
    )

    task.refresh_from_db()
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (30, "seconds")
    assert task.queue == "default"
    assert json.loads(task.kwargs) == {}
    options = ScheduleOptions.objects.get(periodic_task=task)
    assert (options.phrase, options.overlap) == ("every 30 seconds", "default")
    entry = AuditEntry.objects.get(periodic_task=task)
    assert (entry.action, entry.source, entry.actor) == ("created", "cli", user)
    assert entry.changes["task"] == [None, "scheduler.ping"]
    assert TaskEvent.objects.filter(type="schedule.created", periodic_task_name="pinger").exists()


@pytest.mark.parametrize(
    ("schedule", "tz", "crontab"),
    [
        ("0 9 * * *", "UTC", ("0", "9", "*", "*", "*")),
        ("every monday at 8am", "Europe/London", ("0", "8", "1", "*", "*")),
        ("every weekday at 9:30", "America/New_York", ("30", "9", "1-5", "*", "*")),
    ],
)
def test_it_stores_crontabs_in_the_schedule_time_zone(schedule, tz, crontab):
    task = schedule_create(name="cron", task="scheduler.ping", schedule=schedule, tz=tz)

    row = task.crontab
    assert row is not None
    assert (
        row.minute,
        row.hour,
        row.day_of_week,
        row.day_of_month,
        row.month_of_year,
    ) == crontab
    assert str(row.timezone) == tz


def test_it_reuses_schedule_rows():
    schedule_create(name="a", task="scheduler.ping", schedule="every 5 minutes")
    schedule_create(name="b", task="scheduler.ping", schedule="*/5 * * * * ")
    schedule_create(name="c", task="scheduler.ping", schedule="every 5 minutes")
    schedule_create(name="d", task="scheduler.ping", schedule="*/5 * * * *")

    assert IntervalSchedule.objects.count() == 1
    assert CrontabSchedule.objects.count() == 1


@time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False)
def test_it_reuses_the_oldest_of_duplicate_schedule_rows():
    # The stock admins can add the same interval or clocked time twice: no unique constraint.
    intervals = [IntervalSchedule.objects.create(every=5, period="minutes") for _ in range(2)]
    clocked_time = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)
    clocks = [ClockedSchedule.objects.create(clocked_time=clocked_time) for _ in range(2)]

    every = schedule_create(name="every", task="scheduler.ping", schedule="every 5 minutes")
    once = schedule_create(name="once", task="scheduler.ping", schedule="in 5 minutes")

    assert (every.interval, once.clocked) == (intervals[0], clocks[0])
    assert (IntervalSchedule.objects.count(), ClockedSchedule.objects.count()) == (2, 2)


@time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False)
def test_it_creates_a_one_off_as_a_clocked_task():
    task = schedule_create(name="once", task="scheduler.ping", schedule="in 5 minutes")

    assert task.one_off is True
    assert task.clocked is not None
    assert task.clocked.clocked_time == datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"task": "nope.missing"}, "task", "unknown task 'nope.missing'"),
        ({"schedule": "0 25 * * *"}, "schedule", "hour 25 is out of range 0-23"),
        ({"schedule": "whenever you like"}, "schedule", "cannot read"),
        ({"schedule": ""}, "schedule", "empty"),
        ({"schedule": "2001-01-01 10:00"}, "schedule", "in the past"),
        ({"tz": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"params": {"unexpected": 1}}, "params", "unexpected: is not a parameter"),
        ({"params": [1, 2]}, "params", "must be a JSON object"),
        ({"queue": "nowhere"}, "queue", "unknown queue 'nowhere'"),
        ({"overlap": "sometimes"}, "overlap", "'sometimes' is not one of allow, skip"),
        ({"misfire": "later"}, "misfire", "not one of run_once, skip"),
        ({"name": "  "}, "name", "a name is required"),
        ({"name": "x" * 201}, "name", "longer than 200"),
        ({"description": "x" * 2001}, "description", "longer than 2000"),
    ],
)
def test_it_rejects_bad_input_naming_the_field_and_saves_nothing(fields, field, words):
    before = _rows()
    arguments = {"name": "bad", "task": "scheduler.ping", "schedule": "every minute", **fields}

    with pytest.raises(ScheduleError) as caught:
        schedule_create(**arguments)

    assert field in caught.value.errors
    assert words in " ".join(caught.value.errors[field])
    assert words in str(caught.value)
    assert _rows() == before


def test_it_reports_every_bad_field_at_once():
    with pytest.raises(ScheduleError) as caught:
        schedule_create(name="", task="nope", schedule="0 99 * * *")

    assert set(caught.value.errors) == {"name", "task", "schedule"}


def test_it_refuses_a_second_task_with_the_same_name():
    make_schedule(name="unique")
    before = _rows()

    with pytest.raises(ScheduleError, match="already exists"):
        make_schedule(name="unique")

    assert _rows() == before


def test_it_parses_params_json_or_names_the_error():
    assert params_from_json('{"a": 1}') == {"a": 1}
    assert params_from_json("") == {}
    with pytest.raises(ScheduleError, match="params: malformed JSON: Expecting"):
        params_from_json("{oops")


def test_it_updates_only_the_given_fields_and_records_the_diff():
    task = make_schedule(name="report", schedule="every day at 2am", tz="Europe/London")
    user = UserFactory.create()

    schedule_update(
        name="report", schedule="0 9 * * 1", overlap="skip", actor=user, source=Source.ADMIN
    )

    task.refresh_from_db()
    assert task.crontab is not None
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("0", "9", "1")
    assert str(task.crontab.timezone) == "Europe/London"
    options = ScheduleOptions.objects.get(periodic_task=task)
    assert (options.phrase, options.overlap) == ("0 9 * * 1", "skip")
    entry = AuditEntry.objects.filter(action="updated").get()
    assert entry.changes == {
        "schedule": ["every day at 2am", "0 9 * * 1"],
        "overlap": ["default", "skip"],
    }
    assert (entry.actor, entry.source) == (user, "admin")


def test_it_renames_and_refuses_a_clash():
    make_schedule(name="one")
    make_schedule(name="two")

    schedule_update(name="one", new_name="uno")
    assert PeriodicTask.objects.filter(name="uno").exists()

    with pytest.raises(ScheduleError, match="already exists"):
        schedule_update(name="uno", new_name="two")


def test_it_leaves_an_update_with_bad_input_unsaved():
    task = make_schedule(name="stable", schedule="every hour")
    changed = task.date_changed

    with pytest.raises(ScheduleError) as caught:
        schedule_update(name="stable", schedule="61 * * * *", params={"x": 1}, description="new")

    assert set(caught.value.errors) == {"schedule", "params"}
    task.refresh_from_db()
    assert task.interval is not None
    assert (task.description, task.date_changed) == ("", changed)
    assert not AuditEntry.objects.filter(action="updated").exists()


def test_it_does_not_audit_an_update_that_changes_nothing():
    make_schedule(name="same", schedule="every hour")

    schedule_update(name="same", schedule="every hour")

    assert not AuditEntry.objects.filter(action="updated").exists()


def test_it_raises_not_found_for_an_unknown_name():
    for call in (schedule_enable, schedule_disable, schedule_delete, schedule_run_now):
        with pytest.raises(ScheduleNotFound, match="no periodic task named 'ghost'"):
            call(name="ghost")
    with pytest.raises(ScheduleNotFound):
        schedule_update(name="ghost", description="x")


def test_it_enables_and_disables_and_moves_beats_change_counter():
    make_schedule(name="toggle")
    PeriodicTasks.objects.all().delete()

    schedule_disable(name="toggle", source=Source.API)
    assert PeriodicTask.objects.get(name="toggle").enabled is False
    first = PeriodicTasks.last_change()
    assert first is not None

    schedule_disable(name="toggle")  # already disabled: nothing to record
    schedule_enable(name="toggle")

    actions = list(AuditEntry.objects.order_by("id").values_list("action", "source"))
    assert actions == [("created", "system"), ("disabled", "api"), ("enabled", "system")]
    assert PeriodicTasks.last_change() >= first


def test_it_disables_many_in_one_update_and_tells_beat():
    for n in range(5):
        make_schedule(name=f"bulk {n}")
    PeriodicTasks.objects.all().delete()

    with CaptureQueriesContext(connection) as queries:
        changed = schedule_set_enabled_bulk(names=[f"bulk {n}" for n in range(5)], enabled=False)

    assert changed == 5
    assert not PeriodicTask.objects.filter(enabled=True, name__startswith="bulk").exists()
    assert PeriodicTasks.last_change() is not None
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) <= 2  # the tasks, and beat's change counter
    assert AuditEntry.objects.filter(action="disabled").count() == 5


def test_it_deletes_and_keeps_the_audit_trail():
    task = make_schedule(name="doomed")

    schedule_delete(name="doomed", source=Source.CLI)

    assert not PeriodicTask.objects.filter(pk=task.pk).exists()
    assert not ScheduleOptions.objects.filter(pk=task.pk).exists()
    actions = list(
        AuditEntry.objects.filter(periodic_task_name="doomed")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["created", "deleted"]
    assert TaskEvent.objects.filter(type="schedule.deleted").exists()


def test_it_updates_and_deletes_a_row_whose_params_are_not_json():
    make_schedule(name="by hand")
    PeriodicTask.objects.filter(name="by hand").update(kwargs="days=3")

    with pytest.raises(ScheduleError) as caught:
        schedule_update(name="by hand", description="kept params")
    assert set(caught.value.errors) == {"params"}
    schedule_update(name="by hand", params={})
    assert PeriodicTask.objects.get(name="by hand").kwargs == "{}"

    PeriodicTask.objects.filter(name="by hand").update(kwargs="days=3")
    schedule_delete(name="by hand")

    assert not PeriodicTask.objects.filter(name="by hand").exists()
    deleted = AuditEntry.objects.get(action="deleted")
    assert deleted.changes["params"] == ["days=3", None]


def test_it_locks_the_row_it_enables_or_disables():
    if not connection.features.has_select_for_update:
        pytest.skip("the test database has no SELECT ... FOR UPDATE")
    make_schedule(name="locked")

    with CaptureQueriesContext(connection) as queries:
        schedule_disable(name="locked")

    table = f'FROM "{PeriodicTask._meta.db_table}"'
    locks = [q for q in queries.captured_queries if table in q["sql"] and "FOR UPDATE" in q["sql"]]
    assert locks  # beat's change counter takes a lock of its own: look at the task's table


def test_it_queues_run_now_after_commit_with_the_periodic_task_header(
    django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    from config.celery import app

    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append((name, options)))
    make_schedule(name="now please", params={})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        task_id = schedule_run_now(name="now please", source=Source.DASHBOARD)
    assert sent == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()

    assert len(sent) == 1
    name, options = sent[0]
    assert name == "scheduler.ping"
    assert options["task_id"] == task_id
    assert options["queue"] == "default"
    assert options["headers"] == {"periodic_task_name": "now please"}
    assert AuditEntry.objects.filter(action="run_now", source="dashboard").exists()


def test_it_enqueues_only_catalog_tasks_with_valid_params():
    with pytest.raises(ScheduleError, match=r"unknown task 'os\.system'"):
        task_enqueue(task="os.system", params={"cmd": "rm -rf /"})
    with pytest.raises(ScheduleError, match="params"):
        task_enqueue(task="scheduler.ping", params={"extra": True})


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ('"{\\"days\\": 3}"', {"days": 3}),  # JSON, as we queue it
        ("\"{'days': 3, 'dry': True}\"", {"days": 3, "dry": True}),  # Python repr, as beat does
        ('"{}"', {}),
        ("", {}),
    ],
)
def test_it_reads_stored_kwargs_back(stored, expected):
    result = TaskResultFactory.create(task_kwargs=stored)

    assert stored_kwargs(result) == expected


def test_it_refuses_to_retry_unreadable_arguments():
    result = TaskResultFactory.create(task_kwargs="\"{'days': 3, 'cut': ...\"")

    with pytest.raises(ScheduleError, match="cannot be read back"):
        stored_kwargs(result)


def test_it_clears_history_older_than_n_days_in_batches():
    now = datetime.now(UTC)
    old = [TaskResultFactory.create() for _ in range(5)]
    fresh = TaskResultFactory.create()
    from django_celery_results.models import TaskResult

    TaskResult.objects.filter(pk__in=[r.pk for r in old]).update(date_done=now - timedelta(days=40))
    TaskEvent.objects.create(type="task.started", created_at=now - timedelta(days=40))
    TaskEvent.objects.create(type="task.started", created_at=now)

    deleted = history_clear(older_than_days=30, batch_size=2)

    assert deleted == 6
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert TaskEvent.objects.count() == 1


def test_it_describes_schedules_made_by_the_service_or_by_hand():
    by_service = make_schedule(schedule="every monday at 8am")
    every_two, _ = IntervalSchedule.objects.get_or_create(every=2, period="hours")
    by_hand = PeriodicTask.objects.create(name="hand", task="scheduler.ping", interval=every_two)

    assert schedule_describe(by_service) == "At 08:00, only on Monday"
    assert schedule_describe(by_hand) == "every 2 hours"


def test_it_runs_the_task_in_the_caller_when_celery_is_disabled(
    settings, django_capture_on_commit_callbacks
):
    from django_celery_results.models import TaskResult

    settings.CELERY_ENABLED = False

    with django_capture_on_commit_callbacks(execute=True):
        task_id = task_enqueue(task="scheduler.ping")

    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == "SUCCESS"
    assert json.loads(row.result)["pong"] is True


def test_it_names_the_clash_when_a_concurrent_create_took_the_name_first(monkeypatch):
    make_schedule(name="raced")
    before = _rows()
    # As if the other create committed between our name check and our save.
    monkeypatch.setattr("scheduler.services.schedules._validate_name", lambda name, **kwargs: name)

    with pytest.raises(ScheduleError, match="'raced' already exists") as caught:
        make_schedule(name="raced")

    assert list(caught.value.errors) == ["name"]
    assert _rows() == before


# --- The task's default overlap policy -----------------------------------------------------------


@pytest.fixture
def sleep_declares(monkeypatch):
    """Change the overlap policy `scheduler.sleep` declares in the catalog, for one test."""

    def declare(policy: OverlapPolicy) -> None:
        entry = dataclasses.replace(catalog.get("scheduler.sleep"), overlap=policy)
        monkeypatch.setitem(catalog._entries, "scheduler.sleep", entry)

    return declare


def test_it_stores_the_tasks_default_and_follows_a_later_change_of_it(sleep_declares):
    sleep_declares(OverlapPolicy.SKIP)
    make_schedule(name="nap", task="scheduler.sleep", params={"seconds": 1})
    assert ScheduleOptions.objects.get(periodic_task__name="nap").overlap == "default"
    assert overlap_policy_of("nap", "scheduler.sleep") == "skip"

    sleep_declares(OverlapPolicy.ALLOW)

    assert overlap_policy_of("nap", "scheduler.sleep") == "allow"


def test_an_explicit_overlap_policy_stays_whatever_the_task_declares(sleep_declares):
    make_schedule(name="nap", task="scheduler.sleep", params={"seconds": 1}, overlap="skip")

    sleep_declares(OverlapPolicy.ALLOW)

    assert overlap_policy_of("nap", "scheduler.sleep") == "skip"


def test_it_sets_a_schedule_back_to_the_tasks_default():
    make_schedule(name="nap", task="scheduler.sleep", params={"seconds": 1}, overlap="allow")

    schedule_update(name="nap", overlap="default")

    assert ScheduleOptions.objects.get(periodic_task__name="nap").overlap == "default"
    assert overlap_policy_of("nap", "scheduler.sleep") == catalog.get("scheduler.sleep").overlap


# --- Periodic tasks outside the catalog ----------------------------------------------------------


def _outside(name: str = "legacy", *, enabled: bool = False) -> PeriodicTask:
    """A django-celery-beat row from before the catalog: its task is in no entry."""
    interval = IntervalSchedule.objects.create(every=1, period="days")
    return PeriodicTask.objects.create(
        name=name, task="billing.send_invoices", interval=interval, enabled=enabled
    )


def _refused(exc: pytest.ExceptionInfo[ScheduleError], action: str) -> None:
    (message,) = exc.value.errors["task"]
    assert "'billing.send_invoices', which is outside the catalog" in message
    assert f"disabled or deleted, not {action}" in message
    assert "catalog_existing('billing.send_invoices'" in message


def test_it_refuses_to_enable_a_periodic_task_outside_the_catalog():
    _outside()

    with pytest.raises(ScheduleError) as exc:
        schedule_enable(name="legacy")

    _refused(exc, "enabled")
    assert not PeriodicTask.objects.get(name="legacy").enabled
    assert not AuditEntry.objects.exists()


def test_it_refuses_to_enable_many_when_one_is_outside_the_catalog():
    make_schedule(name="ours", enabled=False)
    _outside()

    with pytest.raises(ScheduleError, match="nothing was enabled"):
        schedule_set_enabled_bulk(names=["ours", "legacy"], enabled=True)

    assert not PeriodicTask.objects.filter(enabled=True).exists()


def test_it_refuses_to_run_or_edit_a_periodic_task_outside_the_catalog(
    django_capture_on_commit_callbacks,
):
    _outside(enabled=True)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(ScheduleError) as ran:
            schedule_run_now(name="legacy")
        with pytest.raises(ScheduleError) as edited:
            schedule_update(name="legacy", description="still ours?")

    _refused(ran, "run")
    _refused(edited, "edited")
    assert callbacks == []
    assert PeriodicTask.objects.get(name="legacy").description == ""


def test_it_disables_and_deletes_a_periodic_task_outside_the_catalog():
    _outside("one", enabled=True)
    _outside("two", enabled=True)

    schedule_disable(name="one")
    assert schedule_set_enabled_bulk(names=["two"], enabled=False) == 1
    schedule_delete(name="two")

    assert list(PeriodicTask.objects.values_list("name", "enabled")) == [("one", False)]


def test_it_brings_a_periodic_task_outside_the_catalog_back_by_changing_its_task():
    _outside()

    schedule_update(name="legacy", task="scheduler.ping", enabled=True)

    assert PeriodicTask.objects.filter(name="legacy", task="scheduler.ping", enabled=True).exists()


def _migration_0006() -> Any:
    return importlib.import_module("scheduler.migrations.0006_overlap_default")


def test_migration_0006_keeps_explicit_policies_and_lets_the_untouched_cleanup_follow_its_task(
    cleanup_schedule,
):
    ScheduleOptions.objects.filter(periodic_task=cleanup_schedule).update(overlap="skip")
    make_schedule(name="mine", task="scheduler.sleep", params={"seconds": 1}, overlap="skip")
    editor = SimpleNamespace(connection=connection)

    _migration_0006().cleanup_follows_its_task(django_apps, editor)

    overlaps = dict(ScheduleOptions.objects.values_list("periodic_task__name", "overlap"))
    assert overlaps == {cleanup_schedule.name: "default", "mine": "skip"}


def test_migration_0006_keeps_the_cleanups_policy_once_staff_changed_it(cleanup_schedule):
    schedule_update(name=cleanup_schedule.name, overlap="skip", description="ours now")
    editor = SimpleNamespace(connection=connection)

    _migration_0006().cleanup_follows_its_task(django_apps, editor)

    assert ScheduleOptions.objects.get(periodic_task=cleanup_schedule).overlap == "skip"
