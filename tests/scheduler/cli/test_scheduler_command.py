"""`manage.py scheduler <verb>`: through call_command, a few real subprocesses, a real worker."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from celery import states
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from django_celery_results.models import TaskResult
from kombu import Queue

from config.celery import app
from scheduler.catalog import load_catalog
from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.live.events import event_record
from scheduler.management.commands import scheduler as scheduler_command
from scheduler.models import AuditEntry, Source, TaskEvent
from scheduler.observability.health import Check, HealthReport
from scheduler.observability.worker_heartbeats import forget_worker, record_worker_seen
from scheduler.worker.task_base import SKIPPED
from tests.factories import stored_run
from tests.processes import child_env, run_manage

NOW = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)  # a Wednesday


def scheduler(*args: str, command: scheduler_command.Command | None = None) -> str:
    stdout, stderr = StringIO(), StringIO()
    call_command(command or "scheduler", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def scheduler_json(*args: str) -> Any:
    return json.loads(scheduler(*args))  # the whole output is one document


def create(name: str, schedule: str = "0 9 * * *", *extra: str) -> str:
    return scheduler("create", name, schedule, "--task", "scheduler.ping", *extra)


def stored_result(
    *,
    status: str = states.SUCCESS,
    task_name: str = "scheduler.ping",
    periodic_task_name: str | None = None,
    done: datetime | None = None,
    task_id: str | None = None,
    result: str = '{"pong": true}',
    traceback: str | None = None,
) -> TaskResult:
    row = TaskResult.objects.create(
        task_id=task_id or f"id-{TaskResult.objects.count() + 1}",
        task_name=task_name,
        periodic_task_name=periodic_task_name,
        status=status,
        worker="w1@host",
        result=result,
        traceback=traceback,
        # As the results backend stores them: the message's argsrepr/kwargsrepr, as JSON strings.
        task_args='"()"',
        task_kwargs="\"{'days': 3}\"",
        content_type="application/json",
        content_encoding="utf-8",
        date_started=(done or NOW) - timedelta(seconds=2),
    )
    if done is not None:  # date_done is auto_now: set it after the insert
        TaskResult.objects.filter(pk=row.pk).update(date_done=done)
        row.refresh_from_db()
    return row


def db_counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (
            PeriodicTask,
            IntervalSchedule,
            CrontabSchedule,
            ClockedSchedule,
            AuditEntry,
            TaskEvent,
            TaskResult,
        )
    }


# --- errors: one line, non-zero, nothing changed -------------------------------------------------

BAD_INPUTS = [
    # (argv, what the message says)
    (["create", "x", "0 25 * * *", "--task", "scheduler.ping"], "hour 25 is out of range 0-23"),
    (["create", "x", "every fortnight", "--task", "scheduler.ping"], "cannot read"),
    (["create", "x", "0 9 * * *", "--task", "nope.nothing"], "unknown task 'nope.nothing'"),
    (
        ["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--params", '{"a":'],
        "malformed JSON",
    ),
    (
        ["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--params", "[1, 2]"],
        "must be a JSON object, not list",
    ),
    (
        ["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--params", '{"a": 1}'],
        "a: is not a parameter of this task",
    ),
    (
        [
            *("create", "x", "0 9 * * *", "--task", "scheduler.cleanup_results"),
            *("--params", '{"days": "many"}'),
        ],
        "days: Input should be a valid integer",
    ),
    (
        ["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--tz", "Mars/Base"],
        "unknown time zone 'Mars/Base'",
    ),
    (
        ["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--queue", "nowhere"],
        "unknown queue 'nowhere'",
    ),
    (["create", "x", "2020-01-15 14:30", "--task", "scheduler.ping"], "is in the past"),
    (["create", "existing", "0 9 * * *", "--task", "scheduler.ping"], "already exists"),
    (["create", " ", "0 9 * * *", "--task", "scheduler.ping"], "a name is required"),
    (["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--overlap", "maybe"], "invalid"),
    (["create", "x", "0 9 * * *"], "required: --task"),
    (["show", "nope"], "no periodic task named 'nope'"),
    (["enable", "nope"], "no periodic task named 'nope'"),
    (["disable", "nope"], "no periodic task named 'nope'"),
    (["delete", "nope"], "no periodic task named 'nope'"),
    (["run", "nope"], "no periodic task named 'nope'"),
    (["run", "existing", "--wait", "--timeout", "0"], "--timeout must be more than 0"),
    (["parse", "every blue moon"], "cannot read 'every blue moon'"),
    (["parse", "0 9 * * 8"], "day of week 8 is out of range 0-7"),
    (["parse", "every day", "--tz", "Nowhere/Land"], "unknown time zone 'Nowhere/Land'"),
    (["parse", "every day", "--now", "tuesday"], "--now 'tuesday' is not an ISO 8601"),
    (["parse", "every day", "--count", "-1"], "--count -1 is out of range"),
    (["history", "--since", "yesterday"], "--since 'yesterday' is not an ISO 8601"),
    (["history", "--status", "exploded"], "unknown status 'exploded'"),
    (["history", "--limit", "0"], "--limit 0 is out of range"),
    (["history", "--format", "xml"], "invalid choice: 'xml'"),
    (["logs", "--level", "LOUD"], "unknown level 'LOUD'"),
    (["list", "--enabled", "--disabled"], "not allowed with argument"),
    (["clear-history"], "refusing to delete task history without --confirm"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_it_rejects_bad_input_with_one_line_and_changes_nothing(argv, message):
    create("existing")
    stored_result()
    event_record(type="task.succeeded", task_name="scheduler.ping")
    before = db_counts()

    with pytest.raises(CommandError) as error:
        scheduler(*argv)

    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert db_counts() == before


SUBPROCESS_ERRORS = [
    (["create", "bad", "0 25 * * *", "--task", "scheduler.ping"], "hour 25 is out of range"),
    (["create", "bad", "0 9 * * *", "--task", "scheduler.ping", "--params", "{"], "malformed"),
    (["show", "nope"], "no periodic task named 'nope'"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("argv", "message"), SUBPROCESS_ERRORS)
def test_it_exits_non_zero_with_one_line_on_stderr_from_the_shell(argv, message):
    finished = run_manage("scheduler", *argv, env=child_env())

    assert finished.returncode != 0
    assert finished.stdout == ""
    assert "Traceback" not in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1, finished.stderr
    assert message in finished.stderr
    assert PeriodicTask.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_seed_history_command_from_the_shell():
    stored_result(status=states.FAILURE, result='{"exc_type": "ValueError"}')
    stored_result(status=states.SUCCESS)

    finished = run_manage(
        "scheduler", "history", "--status", "failed", "--format", "json", env=child_env()
    )

    assert finished.returncode == 0, finished.stderr
    rows = json.loads(finished.stdout)
    assert [row["status"] for row in rows] == ["FAILURE"]


# --- available and parse -------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_lists_the_catalog_with_queues_and_parameters():
    output = scheduler("available")

    assert "scheduler.ping  (queue default" in output
    assert "Answer pong" in output
    assert "parameters: none" in output


@pytest.mark.django_db
def test_it_lists_the_catalog_as_json_with_each_schema():
    entries = scheduler_json("available", "--json")

    ping = next(entry for entry in entries if entry["name"] == "scheduler.ping")
    assert ping["queue"] == "default"
    assert ping["params_schema"]["type"] == "object"
    assert {"name", "description", "queue", "overlap", "params_schema"} == set(ping)


PARSE_JSON = [
    # (argv after the phrase, expected kind/interval/crontab/clocked, first two next runs)
    (
        ["every 5 minutes"],
        {"kind": "interval", "interval": {"every": 5, "period": "minutes"}},
        ["2025-01-15T08:05:00+00:00", "2025-01-15T08:10:00+00:00"],
    ),
    (
        ["every monday at 8am", "--tz", "America/New_York"],
        {
            "kind": "crontab",
            "crontab": {
                "minute": "0",
                "hour": "8",
                "day_of_week": "1",
                "day_of_month": "*",
                "month_of_year": "*",
            },
        },
        ["2025-01-20T08:00:00-05:00", "2025-01-27T08:00:00-05:00"],
    ),
    (
        ["0 9 * * 7"],
        {"kind": "crontab", "crontab": {"day_of_week": "0", "hour": "9", "minute": "0"}},
        ["2025-01-19T09:00:00+00:00", "2025-01-26T09:00:00+00:00"],
    ),
    (
        ["tomorrow at 9am", "--tz", "Europe/London"],
        {"kind": "clocked", "clocked": "2025-01-16T09:00:00+00:00"},
        ["2025-01-16T09:00:00+00:00"],
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "expected", "first_runs"), PARSE_JSON)
def test_it_parses_a_phrase_to_exactly_the_documented_json(argv, expected, first_runs):
    document = scheduler_json("parse", *argv, "--now", NOW.isoformat(), "--json")

    assert set(document) == {
        "kind",
        "interval",
        "crontab",
        "clocked",
        "timezone",
        "description",
        "next_runs",
    }
    for key, value in expected.items():
        if isinstance(value, dict) and key == "crontab" and len(value) < 5:
            assert {k: document[key][k] for k in value} == value
        else:
            assert document[key] == value
    for other in {"interval", "crontab", "clocked"} - {expected["kind"]}:
        assert document[other] is None
    assert document["next_runs"][:2] == first_runs
    assert isinstance(document["description"], str)
    assert document["description"]


@pytest.mark.django_db
def test_it_lists_as_many_next_runs_as_asked():
    document = scheduler_json(
        "parse", "every hour", "--now", NOW.isoformat(), "--count", "3", "--json"
    )

    assert document["next_runs"] == [
        "2025-01-15T09:00:00+00:00",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15T11:00:00+00:00",
    ]


@pytest.mark.django_db
@time_machine.travel(NOW, tick=False)
def test_it_counts_from_the_clock_without_now_and_reads_a_naive_now_in_the_zone():
    from_clock = scheduler_json("parse", "every day at 2pm", "--json")
    naive_now = scheduler_json(
        "parse", "every day at 2pm", "--tz", "Asia/Tokyo", "--now", "2025-01-15T13:00", "--json"
    )

    assert from_clock["next_runs"][0] == "2025-01-15T14:00:00+00:00"
    assert naive_now["next_runs"][0] == "2025-01-15T14:00:00+09:00"


@pytest.mark.django_db
def test_it_parses_for_people_too():
    output = scheduler("parse", "every", "weekday", "at", "9:30", "--now", NOW.isoformat())

    assert "Cron:       30 9 * * 1-5" in output
    assert "2025-01-15 09:30:00 UTC  (Wed)" in output
    assert "2025-01-16 09:30:00 UTC  (Thu)" in output


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


# --- enable, disable, delete, run ----------------------------------------------------------------


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


@pytest.mark.django_db
def test_it_queues_a_run_now_and_prints_the_task_id():
    create("job")

    output = scheduler("run", "job")

    entry = AuditEntry.objects.get(periodic_task_name="job", action="run_now")
    task_id = entry.changes["task_id"][1]
    assert entry.source == Source.CLI
    assert f"as task {task_id}." in output


def a_worker_that(store):
    """A stand-in worker: on the first poll it stores the result of the run just queued."""

    def sleep(seconds: float) -> None:
        entry = AuditEntry.objects.filter(action="run_now").latest("id")
        task_id = entry.changes["task_id"][1]
        if not TaskResult.objects.filter(task_id=task_id).exists():
            store(task_id)

    command = scheduler_command.Command()
    command.sleep = sleep
    return command


@pytest.mark.django_db
def test_it_waits_for_a_run_and_prints_its_result():
    create("job")
    command = a_worker_that(lambda task_id: app.backend.mark_as_done(task_id, {"pong": True}))

    output = scheduler("run", "job", "--wait", "--timeout", "5", command=command)

    assert "SUCCESS in" in output
    assert json.loads(output[output.index("{") :]) == {"pong": True}


RUN_WAIT_FAILURES = [
    (lambda task_id: app.backend.mark_as_failure(task_id, ValueError("boom")), "FAILURE"),
    (lambda task_id: app.backend.mark_as_revoked(task_id, "terminated"), "REVOKED"),
    (
        lambda task_id: app.backend.store_result(
            task_id, {"skipped": True, "reason": "skipped: the previous run is running"}, SKIPPED
        ),
        "skipped: the previous run is running",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("store", "message"), RUN_WAIT_FAILURES)
def test_it_exits_1_when_the_run_it_waits_for_does_not_succeed(store, message):
    create("job")

    with pytest.raises(CommandError) as error:
        scheduler("run", "job", "--wait", "--timeout", "5", command=a_worker_that(store))

    assert message in str(error.value)
    assert error.value.returncode == 1


@pytest.mark.django_db
def test_it_times_out_waiting_when_no_worker_answers():
    # In a test transaction the message is never sent (on_commit), so nothing will answer.
    create("job")

    started = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0.3 s waiting for task"):
        scheduler("run", "job", "--wait", "--timeout", "0.3")
    with pytest.raises(CommandError, match=r"timed out after 0.3 s"):
        scheduler("test", "--timeout", "0.3")

    assert time.monotonic() - started < 5


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


# --- logs ----------------------------------------------------------------------------------------


def events(*types: str) -> list[TaskEvent]:
    return [
        event_record(type=event_type, task_name="scheduler.ping", message=f"event {n}")
        for n, event_type in enumerate(types)
    ]


@pytest.mark.django_db
def test_it_prints_the_last_lines_of_the_log_oldest_first():
    events("task.queued", "task.started", "task.succeeded", "task.failed", "task.retried")

    lines = scheduler("logs", "--lines", "3").splitlines()

    assert [line.split()[4] for line in lines] == ["task.succeeded", "task.failed", "task.retried"]
    assert lines[1].split()[3] == "ERROR"


LOG_FILTERS = [
    (["--level", "warning"], ["task.failed", "task.retried"]),
    (["--level", "ERROR"], ["task.failed"]),
    (["--level", "info"], ["task.started", "task.failed", "task.retried", "schedule.created"]),
    (["--filter", "error"], ["task.failed"]),
    (["--filter", "SCHEDULE."], ["schedule.created"]),
    (["--filter", "event 1"], ["task.failed"]),
    (["--filter", "event", "--level", "warning"], ["task.failed", "task.retried"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "types"), LOG_FILTERS)
def test_it_filters_the_log_by_text_and_level(argv, types):
    events("task.started", "task.failed", "task.retried")
    event_record(type="schedule.created", periodic_task_name="nightly")

    lines = scheduler("logs", *argv).splitlines()

    assert [line.split()[4] for line in lines] == types


@pytest.mark.django_db
def test_it_follows_the_log_until_its_time_is_up():
    events("task.started")
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 2:
            event_record(type="task.succeeded", task_name="scheduler.ping", message="later")
        time.sleep(0.01)

    command = scheduler_command.Command()
    command.sleep = sleep
    output = scheduler(
        "logs", "--follow", "--max-seconds", "0.3", "--interval", "0.05", command=command
    )

    lines = output.splitlines()
    assert [line.split()[4] for line in lines] == ["task.started", "task.succeeded"]
    assert len(polls) > 2
    assert set(polls) == {0.05}


@pytest.mark.django_db
def test_it_follows_events_committed_late_below_the_last_id_shown():
    # Under PostgreSQL an id is taken before commit: a row can appear below ids already shown.
    first, late, last = events("task.queued", "task.started", "task.succeeded")
    late_pk = late.pk
    late.delete()  # not committed yet, as far as the command can see
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            event_record(type="task.retried", task_name="scheduler.ping")
            late.pk = late_pk
            late.save(force_insert=True)

    command = scheduler_command.Command()
    command.sleep = sleep
    output = scheduler(
        "logs", "--follow", "--max-seconds", "0.2", "--interval", "0.01", command=command
    )

    types = [line.split()[4] for line in output.splitlines()]
    assert types == ["task.queued", "task.succeeded", "task.started", "task.retried"]
    assert first.pk < late_pk < last.pk


# --- status, health, test ------------------------------------------------------------------------


@pytest.fixture
def broker_state():
    """A fake worker, a beat heartbeat and messages in a queue; all gone afterwards."""
    record_worker_seen("cli-test@host")
    heartbeat = redis_key("scheduler:beat:heartbeat")
    get_redis().set(heartbeat, json.dumps({"at": time.time() - 3, "pid": 4242, "hostname": "b1"}))
    try:
        yield
    finally:
        forget_worker("cli-test@host")
        get_redis().delete(heartbeat)
        with app.connection_for_write() as connection:
            Queue("recovery").bind(connection.default_channel).purge()


@pytest.mark.django_db
def test_it_reports_workers_beat_schedules_results_and_queue_depths(broker_state):
    # Real messages, published by kombu, so the key names are kombu's own (prefix, priorities).
    app.send_task("scheduler.ping", queue="recovery")
    app.send_task("scheduler.ping", queue="recovery", priority=5)
    create("on")
    create("off", "0 9 * * *", "--disabled")
    stored_result(status=states.SUCCESS, task_id="a")
    stored_result(status=states.FAILURE, task_id="b")
    stored_result(status=states.SUCCESS, task_id="c", done=NOW - timedelta(days=400))

    report = scheduler_json("status", "--json")
    output = scheduler("status")

    assert "cli-test@host" in report["workers"]
    assert report["beat"]["pid"] == 4242
    assert 2 <= report["beat"]["seconds_ago"] < 60
    assert report["periodic_tasks"] == {"enabled": 1, "disabled": 1}
    assert report["results_last_hour"] == {"FAILURE": 1, "SUCCESS": 1}
    assert report["queues"]["recovery"] == 2
    assert set(report["queues"]) >= {"default", "agents", "maintenance"}
    assert "Periodic tasks:  1 enabled, 1 disabled" in output
    assert "Last hour:       FAILURE 1, SUCCESS 1" in output
    assert "(pid 4242 on b1)" in output


@pytest.mark.django_db
def test_it_shows_the_beat_leader_its_standbys_and_missed_runs():
    leader = {"at": time.time(), "pid": 1, "hostname": "b1", "id": "b1:1:aa", "leader": "b1:1:aa"}
    standby = {"at": time.time(), "pid": 2, "hostname": "b2", "id": "b2:2:bb", "role": "standby"}
    missed = {"task_id": "t-1", "published_at": "2026-05-04T00:00:00+00:00", "flagged_at": 1}
    keys = {
        redis_key("scheduler:beat:heartbeat"): json.dumps(leader),
        redis_key("scheduler:beat:standby:b2:2:bb"): json.dumps(standby),
    }
    redis: Any = get_redis()
    # Only these: standbys other tests' beats left behind (they expire in a minute) go first.
    for key in redis.scan_iter(match=redis_key("scheduler:beat:standby:*")):
        redis.delete(key)
    redis.mset(keys)
    redis.hset(redis_key("scheduler:beat:missed"), "nightly", json.dumps(missed))
    try:
        report = scheduler_json("status", "--json")
        output = scheduler("status")
    finally:
        redis.delete(*keys, redis_key("scheduler:beat:missed"))

    assert report["beat"]["leader"] == "b1:1:aa"
    assert report["beat"]["standbys"] == ["b2:2:bb"]
    assert report["missed_runs"]["nightly"]["task_id"] == "t-1"
    assert "leader b1:1:aa" in output
    assert "Beat standbys:   1 (b2:2:bb)" in output
    assert "Missed run:      nightly: published 2026-05-04T00:00:00+00:00" in output


@pytest.mark.django_db
def test_it_says_when_beat_has_never_recorded_a_heartbeat():
    output = scheduler("status")

    assert "Beat:            no heartbeat recorded" in output


def report_of(**checks: bool) -> HealthReport:
    return HealthReport(
        checks={name: Check(ok=ok, detail=f"{name} detail") for name, ok in checks.items()}
    )


@pytest.mark.django_db
def test_it_prints_every_health_check_and_exits_0_when_healthy(monkeypatch):
    monkeypatch.setattr(
        scheduler_command, "full_health_report", lambda: report_of(database=True, beat=True)
    )

    output = scheduler("health")
    document = scheduler_json("health", "--json")

    assert output.splitlines() == [
        "database   ok    database detail",
        "beat       ok    beat detail",
    ]
    assert document["status"] == "ok"


@pytest.mark.django_db
def test_it_exits_1_when_unhealthy_naming_what_failed(monkeypatch):
    monkeypatch.setattr(
        scheduler_command,
        "full_health_report",
        lambda: report_of(database=True, workers=False, beat=False),
    )
    stdout = StringIO()

    with pytest.raises(CommandError) as error:
        call_command("scheduler", "health", stdout=stdout)

    assert str(error.value) == "unhealthy: workers, beat failed"
    assert error.value.returncode == 1
    assert "workers    FAIL  workers detail" in stdout.getvalue()


@pytest.mark.django_db
def test_it_checks_the_real_database_and_redis():
    stdout = StringIO()

    with pytest.raises(CommandError):  # no worker and no beat in this test
        call_command("scheduler", "health", stdout=stdout)

    lines = {line.split()[0]: line.split()[1] for line in stdout.getvalue().splitlines()}
    assert lines["database"] == "ok"
    assert lines["redis"] == "ok"
    assert lines["workers"] == "FAIL"


# --- with a real worker (last: the worker is module-scoped and consumes every queue) -------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_runs_now_on_a_real_worker_and_finds_it_in_history(celery_worker):
    create("ping_now", "every 1 hour")

    output = scheduler("run", "ping_now", "--wait", "--timeout", "30")
    history = scheduler_json("history", "--periodic-task", "ping_now", "--format", "json")

    assert "SUCCESS in" in output
    assert f"on {celery_worker.hostname}" in output
    assert '"pong": true' in output
    assert [row["status"] for row in history] == ["SUCCESS"]
    assert history[0]["worker"] == celery_worker.hostname


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_round_trips_a_ping_through_a_real_worker(celery_worker):
    output = scheduler("test", "--timeout", "30")

    assert output.startswith(f"pong from {celery_worker.hostname} in ")
    assert " ms (task " in output


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
