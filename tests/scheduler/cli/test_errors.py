"""`manage.py scheduler` refuses bad input with one line, a non-zero exit and nothing changed,
through call_command and from the shell (where the seed's history command runs too).
"""

from __future__ import annotations

import json

import pytest
from celery import states
from django.core.management.base import CommandError
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from django_celery_results.models import TaskResult

from scheduler.live.events import event_record
from scheduler.models import AuditEntry, TaskEvent
from tests.processes import child_env, run_manage
from tests.scheduler.cli.helpers import create, scheduler, stored_result


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
    (
        ["create", "x", "0 9 * * *", "--task", "scheduler.ping", "--overlap", "maybe"],
        "overlap: 'maybe' is not one of allow, skip",
    ),
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
