"""Schedules that can never fire are refused with the reason, and one-offs are described in
words in their zone (issue 19, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from scheduler.schedules.parsing import ScheduleParseError, parse_schedule
from scheduler.schedules.rows import schedule_describe
from scheduler.services import schedule_create
from scheduler.services.errors import ScheduleError


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 0 31 4 *", "April has no day 31"),
        ("0 0 30 2 *", "February has no day 30"),
        ("0 0 30,31 2 *", "February has no day 30 or 31"),
        ("0 0 31 4,6,9,11 *", "April, June, September or November have no day 31"),
        ("0 0 31 4 1", "April has no day 31"),
    ],
)
def test_a_crontab_that_can_never_run_is_refused_with_the_reason(cron: str, reason: str) -> None:
    with pytest.raises(ScheduleParseError) as caught:
        parse_schedule(cron)
    assert str(caught.value) == f"{cron!r} can never run: {reason}"


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 30,31 2,4 *", "0 0 31 * *", "0 0 13 * 5"])
def test_rare_crontabs_that_do_run_are_kept(cron: str) -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    parsed = parse_schedule(cron, now=now)
    assert parsed.kind == "crontab"
    assert parsed.next_runs(count=1, now=now)


@pytest.mark.django_db
def test_nothing_is_saved_and_the_cli_exits_non_zero() -> None:
    with pytest.raises(ScheduleError, match="can never run: April has no day 31"):
        schedule_create(name="never", task="scheduler.ping", schedule="0 0 31 4 *")
    with pytest.raises(CommandError, match="can never run: April has no day 31"):
        call_command("scheduler", "create", "never", "0 0 31 4 *", "--task", "scheduler.ping")
    assert not PeriodicTask.objects.filter(name="never").exists()


@pytest.mark.django_db
def test_a_one_off_is_described_in_words_in_its_zone() -> None:
    task = schedule_create(
        name="launch",
        task="scheduler.ping",
        schedule="2099-03-12 09:00:00.123456",
        tz="America/New_York",
    )
    task = PeriodicTask.objects.select_related("clocked").get(pk=task.pk)
    assert schedule_describe(task) == "once, at 2099-03-12 09:00 EDT"
    out = StringIO()
    call_command("scheduler", "list", stdout=out)
    assert "once, at 2099-03-12 09:00 EDT" in out.getvalue()
    assert ".123456" not in out.getvalue()
