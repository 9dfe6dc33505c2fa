"""`manage.py scheduler backfill` and `backfills`: the count, the runs of a dry run, progress,
and refusals as one line naming the option, with nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management.base import CommandError

from scheduler.management.commands import scheduler as scheduler_command
from scheduler.models import AuditEntry, Backfill
from scheduler.services import ScheduleError, backfill_publish
from tests.processes import child_env, run_manage
from tests.scheduler.cli.helpers import scheduler, scheduler_json

from .conftest import at, daily_at_nine, every_minute

pytestmark = pytest.mark.django_db


def _nothing_written() -> None:
    assert not Backfill.objects.exists()
    assert not AuditEntry.objects.filter(changes__has_key="backfill").exists()


def test_a_dry_run_counts_and_lists_the_runs_in_the_schedules_zone():
    daily_at_nine(tz="Europe/Paris")

    output = scheduler(
        "backfill",
        "nightly report",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-31 23:59",
        "--dry-run",
    )

    lines = output.splitlines()
    assert lines[0] == (
        "Would backfill 'nightly report': 31 runs from 2025-01-01 00:00:00 CET to "
        "2025-01-31 23:59:00 CET (overlap buffer_all). Nothing was run."
    )
    assert lines[1] == "  2025-01-01 09:00:00 CET  (Wed)"
    assert lines[-1] == "  ... 21 more, the last at 2025-01-31 09:00:00 CET"
    _nothing_written()


def test_a_dry_run_in_json_lists_every_run():
    daily_at_nine()

    data = scheduler_json(
        "backfill",
        "nightly report",
        "--from",
        "2025-01-01T00:00:00+00:00",
        "--to",
        "2025-01-03T23:00:00+00:00",
        "--dry-run",
        "--json",
    )

    assert data["dry_run"] is True
    assert data["total"] == 3
    assert data["runs"] == [f"2025-01-0{day}T09:00:00+00:00" for day in (1, 2, 3)]
    _nothing_written()


def test_it_starts_a_backfill_and_says_how_many_runs(sent, django_capture_on_commit_callbacks):
    daily_at_nine()

    with django_capture_on_commit_callbacks(execute=True):
        output = scheduler(
            "backfill",
            "nightly report",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-05",
            "--overlap",
            "skip",
        )

    row = Backfill.objects.get()
    assert output.splitlines() == [
        f"Backfill {row.pk} of 'nightly report': 4 runs from 2025-01-01 00:00:00 UTC to "
        "2025-01-05 00:00:00 UTC (overlap skip).",
        "Publishing in the background: `manage.py scheduler backfills` shows its progress.",
    ]
    assert (row.source, row.overlap, row.total) == ("cli", "skip", 4)
    assert [message.name for message in sent] == ["scheduler.backfill"]


def test_it_waits_and_prints_the_progress(sent, django_capture_on_commit_callbacks):
    daily_at_nine()
    command = scheduler_command.Command()

    def worker(seconds: float) -> None:  # the worker's part, done while the command waits
        backfill_publish(backfill_id=Backfill.objects.get().pk)

    command.sleep = worker

    with django_capture_on_commit_callbacks(execute=True):
        output = scheduler(
            "backfill",
            "nightly report",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-05",
            "--wait",
            command=command,
        )

    lines = output.splitlines()
    assert lines[:2] == ["running: 0/4 runs", "done: 4/4 runs"]
    assert lines[2].startswith("Backfill ")


def test_a_wait_ends_with_an_error_when_the_backfill_failed(
    sent, django_capture_on_commit_callbacks
):
    periodic_task = daily_at_nine()
    command = scheduler_command.Command()

    def worker(seconds: float) -> None:
        periodic_task.delete()
        with pytest.raises(ScheduleError, match="was deleted"):
            backfill_publish(backfill_id=Backfill.objects.get().pk)

    command.sleep = worker

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(CommandError, match=r"backfill \d+ failed: .*'nightly report' was deleted"),
    ):
        scheduler(
            "backfill",
            "nightly report",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-05",
            "--wait",
            command=command,
        )


BAD_INPUTS = [
    (["ghost", "--from", "2025-01-01", "--to", "2025-01-02"], "no periodic task named 'ghost'"),
    (
        ["minutely", "--from", "2025-01-01", "--to", "2025-01-09 13:44"],
        "--to: the range holds 12,345 runs; at most 10,000",
    ),
    (
        ["minutely", "--from", "2025-01-02", "--to", "2025-01-01"],
        "--to: 2025-01-01T00:00:00+00:00 is before from (2025-01-02T00:00:00+00:00)",
    ),
    (
        ["minutely", "--from", "yesterday", "--to", "2025-01-01"],
        "--from: 'yesterday' is not an ISO 8601 date or time",
    ),
    (
        ["minutely", "--from", "2025-01-01", "--to", "2025-01-02", "--overlap", "queue"],
        "invalid choice",
    ),
    (["minutely", "--to", "2025-01-02"], "the following arguments are required: --from"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_it_refuses_bad_input_with_one_line_and_writes_nothing(argv, message, sent):
    every_minute(last_run_at=at("2025-01-01 00:00"))

    with pytest.raises(CommandError) as error:
        scheduler("backfill", *argv)

    assert message in str(error.value)
    assert "\n" not in str(error.value)
    _nothing_written()
    assert sent == []


def test_it_lists_the_latest_backfills_with_their_progress(sent):
    daily_at_nine()
    every_minute(last_run_at=at("2025-01-01 00:00"))
    scheduler("backfill", "nightly report", "--from", "2025-01-01", "--to", "2025-01-05")
    scheduler("backfill", "minutely", "--from", "2025-01-01", "--to", "2025-01-01 00:09")
    backfill_publish(backfill_id=Backfill.objects.get(periodic_task_name="minutely").pk)

    table = scheduler("backfills").splitlines()
    only = scheduler_json("backfills", "nightly report", "--json")

    assert table[0].split() == [
        "ID",
        "CREATED",
        "PERIODIC",
        "TASK",
        "FROM",
        "TO",
        "OVERLAP",
        "PROGRESS",
        "STATUS",
    ]
    assert table[1].split()[4:] == [
        "minutely",
        "2025-01-01",
        "00:00:00",
        "UTC",
        "2025-01-01",
        "00:09:00",
        "UTC",
        "buffer_all",
        "10/10",
        "runs",
        "done",
    ]
    assert "0/4 runs" in table[2]
    assert table[2].endswith("running")
    assert [(row["periodic_task_name"], row["total"]) for row in only] == [("nightly report", 4)]


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_with_one_line_on_stderr_from_the_shell():
    every_minute(last_run_at=at("2025-01-01 00:00"))
    end = at("2025-01-01 00:00") + timedelta(minutes=20_000)

    finished = run_manage(
        "scheduler",
        "backfill",
        "minutely",
        "--from",
        "2025-01-01",
        "--to",
        end.isoformat(),
        env=child_env(),
    )

    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr.strip().splitlines() == [
        "CommandError: --to: the range holds 20,001 runs; at most 10,000: backfill a shorter "
        "range, or several"
    ]
    assert not Backfill.objects.exists()
