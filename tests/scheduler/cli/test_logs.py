"""`manage.py scheduler logs`: the last lines of the event log oldest first, filtered by text, type
patterns and level, and followed until its time is up, rows committed late included.
"""

from __future__ import annotations

import time

import pytest

from scheduler.live import publish
from scheduler.live.events import event_record
from scheduler.management.commands import scheduler as scheduler_command
from scheduler.models import TaskEvent
from tests.scheduler.cli.helpers import scheduler

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


PATTERN_FILTERS = [
    (["--filter", "report.*"], ["report.published", "report.retracted"]),
    (["--filter", "REPORT.PUB*"], ["report.published"]),
    (["--filter", "task.completed"], ["task.succeeded"]),
    (["--filter", "task.updated"], ["schedule.disabled"]),
    (["--filter", "task.failed,incident.*"], ["task.failed", "incident.opened"]),
    (["--filter", "*.re[ft]*"], ["task.retried", "report.retracted"]),
    # Text still finds any line containing it.
    (["--filter", "report.pub"], ["report.published"]),
    (["--filter", "from reports"], ["report.published"]),
    (["--level", "warning"], ["task.failed", "task.retried", "task.missed", "incident.opened"]),
    (["--level", "error", "--filter", "incident.*"], ["incident.opened"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("argv", "types"), PATTERN_FILTERS)
def test_it_filters_the_log_by_type_patterns_and_the_seeds_aliases(argv, types):
    events("task.succeeded", "task.failed", "task.retried", "task.missed", "incident.opened")
    event_record(type="schedule.disabled", periodic_task_name="nightly")
    publish("report.published", "from reports", source="reports")
    publish("report.retracted")

    lines = scheduler("logs", *argv).splitlines()

    assert [line.split()[4] for line in lines] == types


@pytest.mark.django_db
def test_it_shows_the_overlap_policys_decisions():
    events("task.started", "task.buffered", "task.skipped", "task.cancelled", "task.terminated")

    argv = ("--filter", "task.buffered,task.cancelled,task.terminated")
    lines = scheduler("logs", *argv).splitlines()

    assert [line.split()[4] for line in lines] == [
        "task.buffered",
        "task.cancelled",
        "task.terminated",
    ]
    assert [line.split()[3] for line in lines] == ["INFO", "WARNING", "WARNING"]


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
