"""The Python API (scheduler/client.py): schedule, run, cancel, list and status, sync and async,
over the schedule services: what it saves, what it refuses (with nothing saved or queued), its
audit trail (source "python"), and the seeds' names."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django_celery_beat.models import ClockedSchedule, IntervalSchedule, PeriodicTask

from config.celery import app
from scheduler import client
from scheduler.client import RunResult, Schedule, ScheduleError, ScheduleNotFound
from scheduler.models import AuditEntry, ScheduleOptions

pytestmark = pytest.mark.django_db

PING = "scheduler.ping"
SLEEP = "scheduler.sleep"


def _saved() -> tuple[int, int, int]:
    return (
        PeriodicTask.objects.count(),
        ScheduleOptions.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The messages published (nothing reaches a broker)."""
    messages: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: messages.append((name, options)))
    return messages


# --- schedule ------------------------------------------------------------------------------------


def test_it_schedules_a_phrase_and_returns_the_schedule_as_stored():
    made = client.schedule(
        SLEEP, "every monday at 8am", params={"seconds": 0.5}, timezone="Europe/London"
    )

    assert isinstance(made, Schedule)
    assert made.name == "scheduler.sleep every monday at 8am"
    assert (made.task, made.params, made.kind) == (SLEEP, {"seconds": 0.5}, "crontab")
    assert (made.phrase, made.timezone, made.enabled) == (
        "every monday at 8am",
        "Europe/London",
        True,
    )
    assert made.next_run is not None
    assert made.next_run.astimezone(ZoneInfo("Europe/London")).hour == 8
    assert made.owner is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "other"  # type: ignore[misc]
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.periodic_task_name) == (
        "created",
        "python",
        made.name,
    )


def test_a_default_name_taken_already_gets_a_number():
    first = client.schedule(PING, "every 5 minutes")
    second = client.schedule(PING, "every 5 minutes")

    assert (first.name, second.name) == ("scheduler.ping every 5 minutes", f"{first.name} #2")


@pytest.mark.parametrize(
    ("when", "every", "period"),
    [
        (timedelta(minutes=5), 5, "minutes"),
        (timedelta(seconds=90), 90, "seconds"),
        (timedelta(days=2), 2, "days"),
    ],
)
def test_a_timedelta_is_an_interval(when, every, period):
    made = client.schedule(PING, when, name="interval")

    row = PeriodicTask.objects.get(name="interval")
    assert made.kind == "interval"
    assert row.interval is not None
    assert (row.interval.every, row.interval.period) == (every, period)


def test_a_datetime_runs_once_and_a_naive_one_is_read_in_the_schedules_zone():
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    aware = client.schedule(PING, moment, name="aware")
    naive = client.schedule(
        PING, moment.replace(tzinfo=None, hour=9, minute=0), name="naive", timezone="Asia/Tokyo"
    )

    assert (aware.kind, aware.one_off, aware.next_run) == ("clocked", True, moment)
    clocked = PeriodicTask.objects.get(name="naive").clocked
    assert clocked is not None
    tokyo = clocked.clocked_time
    assert tokyo.astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
    assert naive.one_off


@pytest.mark.parametrize(
    ("task", "when", "options", "field"),
    [
        ("os.system", "every day", {}, "task"),
        (SLEEP, "every day", {"params": {"seconds": "long"}}, "params"),
        (SLEEP, "every day", {"params": {"nope": 1}}, "params"),
        (PING, "every blue moon", {}, "schedule"),
        (PING, "every day", {"timezone": "Mars/Olympus"}, "timezone"),
        (PING, "every day", {"queue": "nowhere"}, "queue"),
        (PING, 300, {}, "schedule"),
        (PING, timedelta(0), {}, "schedule"),
        (PING, timedelta(seconds=1.5), {}, "schedule"),
        (PING, datetime(2001, 1, 1, tzinfo=UTC), {}, "schedule"),
        (PING, "every day", {"name": ""}, "name"),
    ],
)
def test_bad_input_raises_a_schedule_error_naming_the_field_and_saves_nothing(
    task, when, options, field
):
    before = _saved()

    with pytest.raises(ScheduleError) as raised:
        client.schedule(task, when, **options)

    assert field in raised.value.errors
    assert isinstance(raised.value, ValueError)
    assert _saved() == before
    assert not IntervalSchedule.objects.filter(every=300).exists()


def test_a_name_taken_is_refused_unless_replace_says_to_change_it():
    client.schedule(PING, "every 5 minutes", name="ping")

    with pytest.raises(ScheduleError, match="already exists"):
        client.schedule(PING, "every hour", name="ping")
    changed = client.schedule(PING, "every hour", name="ping", replace=True)

    assert changed.description == "every hour"
    assert PeriodicTask.objects.filter(name="ping").count() == 1
    assert list(AuditEntry.objects.values_list("action", flat=True).order_by("id")) == [
        "created",
        "updated",
    ]


# --- cancel and list -----------------------------------------------------------------------------


def test_it_cancels_by_name_id_or_schedule():
    by_name = client.schedule(PING, "every 5 minutes", name="a")
    by_id = client.schedule(PING, "every 5 minutes", name="b")
    itself = client.schedule(PING, "every 5 minutes", name="c")

    gone = [client.cancel("a"), client.cancel(by_id.id), client.cancel(itself)]

    assert gone == [by_name, by_id, itself]
    assert not PeriodicTask.objects.filter(name__in=["a", "b", "c"]).exists()
    deleted = AuditEntry.objects.filter(action="deleted", source="python")
    assert sorted(deleted.values_list("periodic_task_name", flat=True)) == ["a", "b", "c"]


@pytest.mark.parametrize("target", ["nobody", 999_999])
def test_cancelling_an_unknown_schedule_raises_and_changes_nothing(target):
    client.schedule(PING, "every 5 minutes", name="kept")
    before = _saved()

    with pytest.raises(ScheduleNotFound):
        client.cancel(target)

    assert _saved() == before


def test_cancel_refuses_what_is_not_a_schedule():
    with pytest.raises(ScheduleError, match="expected a schedule's name, id or Schedule"):
        client.cancel(1.5)  # type: ignore[arg-type]


def test_it_lists_schedules_by_filter(cleanup_schedule):
    client.schedule(PING, "every 5 minutes", name="ping one")
    client.schedule(PING, "every hour", name="ping two", enabled=False)
    client.schedule(SLEEP, "every day", name="nap", queue="maintenance")

    def names(**filters: Any) -> list[str]:
        return [made.name for made in client.list_schedules(**filters)]

    assert names(task=PING) == ["ping one", "ping two"]
    assert names(task=PING, enabled=True) == ["ping one"]
    assert names(search="PING") == ["ping one", "ping two"]
    assert names(queue="maintenance") == ["nap", cleanup_schedule.name]
    assert names(task=PING, limit=1) == ["ping one"]
    assert "nap" in names()
    with pytest.raises(ScheduleError, match="limit"):
        client.list_schedules(limit=-1)


# --- run and status ------------------------------------------------------------------------------


def test_it_runs_a_task_once_queued_after_commit_and_audited(
    sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        queued = client.run(SLEEP, {"seconds": 0.25})

    assert queued == RunResult(queued.task_id, "PENDING", SLEEP, None, None, None, None)
    [(name, options)] = sent
    assert (name, options["task_id"], options["kwargs"]) == (
        SLEEP,
        queued.task_id,
        {"seconds": 0.25},
    )
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.periodic_task_name) == ("task_run", "python", SLEEP)
    assert entry.changes["task_id"] == [None, queued.task_id]


@pytest.mark.parametrize(
    ("task", "params", "options", "field"),
    [
        ("os.system", {"cmd": "true"}, {}, "task"),
        (SLEEP, {"seconds": 60}, {}, "seconds"),
        (PING, {"extra": True}, {}, "extra"),
        (PING, None, {"queue": "nowhere"}, "queue"),
        (PING, None, {"wait": -1}, "wait"),
        (PING, None, {"wait": "soon"}, "wait"),
    ],
)
def test_a_bad_run_raises_and_queues_nothing(
    sent, django_capture_on_commit_callbacks, task, params, options, field
):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ScheduleError) as raised:
        client.run(task, params, **options)

    assert field in str(raised.value)
    assert sent == []
    assert not AuditEntry.objects.exists()


def test_waiting_on_a_run_inside_a_transaction_is_refused(sent):
    with transaction.atomic(), pytest.raises(ScheduleError, match="wait outside it"):
        client.run(PING, wait=1)

    assert sent == []


def test_status_reads_the_result_backend_and_refuses_a_malformed_id():
    assert client.status("0b9e0f0e-unknown").state == "PENDING"
    with pytest.raises(ScheduleError, match="is not a task id"):
        client.status("no spaces/or slashes")


@pytest.mark.django_db(transaction=True)
def test_it_runs_and_waits_for_the_result(settings):
    settings.CELERY_ENABLED = False  # run in the caller: a deployment without a broker

    done = client.run(PING, wait=10)

    assert (done.state, done.finished, done.successful) == ("SUCCESS", True, True)
    assert done.result["pong"] is True
    assert client.status(done.task_id) == done


# --- async ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_async_twins_schedule_list_run_and_cancel(settings):
    settings.CELERY_ENABLED = False

    made = await client.aschedule(PING, timedelta(minutes=5), name="async ping")
    listed = await client.alist_schedules(task=PING)
    done = await client.arun(PING, wait=10)
    read = await client.astatus(done.task_id)
    gone = await client.acancel("async ping")

    assert made.description == "every 5 minutes"
    assert [schedule.name for schedule in listed] == ["async ping"]
    assert done.state == "SUCCESS"
    assert read == done
    assert gone == made
    assert not await PeriodicTask.objects.filter(name="async ping").aexists()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_async_twins_refuse_bad_input_too():
    with pytest.raises(ScheduleError, match="task"):
        await client.aschedule("os.system", "every day")
    with pytest.raises(ScheduleError, match="wait"):
        await client.arun(PING, wait=-1)
    with pytest.raises(ScheduleNotFound):
        await client.acancel("nobody")

    assert not await PeriodicTask.objects.filter(task="os.system").aexists()
    assert not await AuditEntry.objects.aexists()


# --- The seeds' names ----------------------------------------------------------------------------


def test_the_seeds_names_schedule_cancel_and_list():
    scheduler = client.get_scheduler()

    recurring = client.schedule_recurring(PING, "every day at 3am")
    once = client.schedule_one_time(PING, "tomorrow at 2am")
    later = client.schedule_one_time(PING, timedelta(minutes=10))
    custom = scheduler.schedule_task(SLEEP, "in 10 minutes", args=(0.5,), task_id="my_custom_task")
    either = client.schedule_task(PING, "every 5 minutes")
    listed = {made.name for made in scheduler.list_scheduled_tasks(task=SLEEP)}
    client.cancel_task(custom)
    scheduler.cancel_task(either.name)

    assert (recurring.kind, once.kind, later.kind) == ("crontab", "clocked", "clocked")
    assert (custom.name, custom.params, custom.one_off) == (
        "my_custom_task",
        {"seconds": 0.5},
        True,
    )
    assert listed == {"my_custom_task"}
    assert {made.name for made in client.list_scheduled_tasks()} >= {recurring.name, once.name}
    assert not PeriodicTask.objects.filter(name__in=["my_custom_task", either.name]).exists()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: client.schedule_one_time(PING, "every day"), "repeats"),
        (lambda: client.schedule_recurring(PING, "in 5 minutes"), "is one moment"),
        (lambda: client.schedule_task(SLEEP, "every day", args=(1, 2)), "takes 1 parameters"),
        (
            lambda: client.schedule_task(SLEEP, "every day", args=(1,), kwargs={"seconds": 2}),
            "given twice",
        ),
        (lambda: client.schedule_task("os.system", "every day", args=("ls",)), "unknown task"),
    ],
)
def test_the_seeds_names_refuse_what_does_not_fit_and_save_nothing(call, message):
    before = _saved()

    with pytest.raises(ScheduleError, match=message):
        call()

    assert _saved() == before
    assert not ClockedSchedule.objects.exists()
