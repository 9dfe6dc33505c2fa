"""Pauses through the services: who, why and until when recorded, audited and told as events; an
end in the past refused naming `until`; a resume that forgets the pause and makes none of the
runs missed; the pause that ends by itself (the watcher's step); and the schedule that pauses
itself after N failed runs in a row, with its incident, a success in between starting the count
again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduler.core.redis_connection import get_redis, redis_key
from scheduler.models import AuditEntry, Incident, ScheduleOptions, Source, TaskEvent
from scheduler.protocol import PAUSES_RESUME_LOCK_KEY
from scheduler.schedules import pause_of
from scheduler.services import (
    ScheduleError,
    ScheduleNotFound,
    schedule_disable,
    schedule_enable,
    schedule_get,
    schedule_pause,
    schedule_pause_on_failure,
    schedule_resume,
    schedules_pause,
    schedules_resume,
    schedules_resume_due,
)
from scheduler.services.pauses import pause_settings_forget, schedule_run_ended
from scheduler.system import alerting as alerting_module
from scheduler.system.alerting import AlertWatcher
from tests.alert_setup import alerting
from tests.factories import event_payload_of, make_channel, make_rule, make_schedule, user_with
from tests.scheduler.beat.helpers import forget_beats, recording_scheduler

pytestmark = pytest.mark.django_db

__all__ = ["alerting"]


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    # The watcher's step closes its thread's old connections; here it runs on the test's own.
    monkeypatch.setattr(alerting_module, "close_old_connections", lambda: None)
    pause_settings_forget()
    get_redis().delete(redis_key(PAUSES_RESUME_LOCK_KEY))
    yield
    pause_settings_forget()


def events(type: str) -> list[TaskEvent]:
    return list(TaskEvent.objects.filter(type=type).order_by("id"))


# --- Pause ---------------------------------------------------------------------------------------


def test_it_pauses_with_who_why_and_until_when_audited_with_the_note():
    alice = user_with()
    make_schedule(name="nightly")
    now = timezone.now()

    row = schedule_pause(
        name="nightly", note="deploy freeze", until="2h", actor=alice, source=Source.CLI, now=now
    )

    pause = pause_of(row)
    assert not row.enabled
    assert pause is not None
    assert (pause.by, pause.note, pause.until) == (
        alice.get_username(),
        "deploy freeze",
        now + timedelta(hours=2),
    )
    entry = AuditEntry.objects.get(action="paused")
    assert (entry.actor, entry.source) == (alice, "cli")
    assert entry.changes["pause_note"] == ["", "deploy freeze"]
    assert entry.changes["paused_until"] == [None, (now + timedelta(hours=2)).isoformat()]
    [event] = events("schedule.paused")
    assert event.periodic_task_name == "nightly"
    assert event.payload["note"] == "deploy freeze"
    assert event.message.startswith(f"paused by {alice.get_username()} until ")


def test_pausing_a_paused_schedule_changes_its_note_and_end():
    make_schedule(name="nightly")
    schedule_pause(name="nightly", note="first", until="1h")

    row = schedule_pause(name="nightly", note="second")

    pause = pause_of(row)
    assert pause is not None
    assert (pause.note, pause.until) == ("second", None)
    assert AuditEntry.objects.filter(action="paused").latest("id").changes["pause_note"] == [
        "first",
        "second",
    ]


@pytest.mark.parametrize(
    ("until", "field", "says"),
    [
        ("2020-01-01 09:00", "until", "is in the past: a pause ends in the future"),
        ("soon", "until", "is neither a duration"),
        (timezone.now() - timedelta(seconds=1), "until", "is in the past"),
    ],
)
def test_it_refuses_an_end_not_ahead_naming_until_and_pauses_nothing(until, field, says):
    make_schedule(name="nightly")

    with pytest.raises(ScheduleError) as raised:
        schedule_pause(name="nightly", note="why", until=until)

    assert says in raised.value.errors[field][0]
    assert schedule_get("nightly").enabled
    assert not AuditEntry.objects.exclude(action="created").exists()
    assert not events("schedule.paused")


def test_it_refuses_a_note_too_long_naming_note():
    make_schedule(name="nightly")

    with pytest.raises(ScheduleError) as raised:
        schedule_pause(name="nightly", note="x" * 2001)

    assert raised.value.errors == {"note": ["is longer than 2000 characters"]}
    assert schedule_get("nightly").enabled


def test_it_says_which_schedule_does_not_exist():
    with pytest.raises(ScheduleNotFound, match="no periodic task named 'gone'"):
        schedule_pause(name="gone", note="x")


def test_a_schedule_outside_the_catalog_may_be_paused_but_not_until_a_time():
    row = make_schedule(name="old")
    PeriodicTask.objects.filter(pk=row.pk).update(task="legacy.task")

    with pytest.raises(ScheduleError) as raised:
        schedule_pause(name="old", until="1h")
    paused = schedule_pause(name="old", note="retired")

    assert "outside the catalog" in raised.value.errors["until"][0]
    assert pause_of(paused) is not None


# --- Resume --------------------------------------------------------------------------------------


def test_resume_forgets_the_pause_and_makes_none_of_the_runs_missed():
    make_schedule(name="often", schedule="every 5 minutes")
    schedule_pause(name="often", note="maintenance", until="1d")
    later = timezone.now() + timedelta(hours=3)

    row = schedule_resume(name="often", actor=user_with(), source=Source.API, now=later)

    assert row.enabled
    assert pause_of(row) is None
    options = ScheduleOptions.objects.get(pk=row.pk)
    assert (options.paused_at, options.paused_by, options.pause_note, options.paused_until) == (
        None,
        None,
        "",
        None,
    )
    # Beat counts the next run from the resume (not from before the pause): nothing is due now.
    assert row.last_run_at == later
    entry = AuditEntry.objects.get(action="resumed")
    assert entry.changes["pause_note"] == ["maintenance", ""]
    assert events("schedule.resumed")[0].payload["source"] == "api"


def test_beat_makes_none_of_the_runs_missed_while_paused():
    forget_beats()
    make_schedule(name="every 5", schedule="every 5 minutes")
    make_schedule(name="started", schedule="every 5 minutes")
    long_ago = timezone.now() - timedelta(hours=3)
    # Last saved (and, for one, started) long before the pause: without a last run at the
    # resume, beat would count from then and run both at once.
    PeriodicTask.objects.update(date_changed=long_ago)
    PeriodicTask.objects.filter(name="started").update(start_time=long_ago)
    schedules_pause(names=["every 5", "started"], note="maintenance")

    schedules_resume(names=["every 5", "started"])
    scheduler = recording_scheduler()
    scheduler.tick_once()

    assert scheduler.sent == []
    assert {entry.name for entry in scheduler.entries.values()} == {"every 5", "started"}
    forget_beats()


def test_a_schedule_with_a_start_time_ahead_waits_for_it_after_a_resume():
    row = make_schedule(name="later")
    start = timezone.now() + timedelta(days=2)
    PeriodicTask.objects.filter(pk=row.pk).update(start_time=start)
    schedule_pause(name="later", note="x")

    resumed = schedule_resume(name="later")

    assert resumed.last_run_at is None  # beat's first run is at the start time


def test_a_plain_enable_or_disable_ends_a_pause_too():
    make_schedule(name="a")
    make_schedule(name="b")
    schedules_pause(names=["a", "b"], note="x", until="1h")

    schedule_enable(name="a")
    schedule_disable(name="a")

    assert pause_of(schedule_get("a")) is None  # disabled, without the old note
    assert pause_of(schedule_get("b")) is not None
    assert ScheduleOptions.objects.get(periodic_task__name="a").paused_until is None


def test_resume_refuses_a_schedule_outside_the_catalog_and_resumes_none():
    make_schedule(name="fine")
    old = make_schedule(name="old")
    schedules_pause(names=["fine", "old"], note="x")
    PeriodicTask.objects.filter(pk=old.pk).update(task="legacy.task")

    with pytest.raises(ScheduleError, match="outside the catalog"):
        schedules_resume(names=["fine", "old"])

    assert not PeriodicTask.objects.filter(enabled=True).exists()


# --- The end of a pause --------------------------------------------------------------------------


def test_the_watchers_step_resumes_a_pause_that_ended_as_the_system():
    make_schedule(name="soon")
    make_schedule(name="later")
    start = timezone.now()
    schedule_pause(name="soon", note="a second", until="1s", now=start)
    schedule_pause(name="later", note="a day", until="1d", now=start)

    with time_machine.travel(start + timedelta(seconds=2), tick=False):
        done = AlertWatcher(0, 1.0).resume_tick()

    assert done
    assert schedule_get("soon").enabled
    assert not schedule_get("later").enabled
    entry = AuditEntry.objects.get(action="resumed")
    assert (entry.periodic_task_name, entry.source, entry.actor) == ("soon", "system", None)
    [event] = events("schedule.resumed")
    assert (event.periodic_task_name, event.message) == (
        "soon",
        "resumed by itself: its pause ended",
    )


def test_one_process_looks_per_round():
    make_schedule(name="soon")

    first, second = AlertWatcher(0, 1.0), AlertWatcher(0, 1.0)

    assert first.resume_tick()
    assert not second.resume_tick()  # another process of the fleet looked this round


def test_the_look_costs_one_read_when_no_pause_has_ended(django_assert_num_queries):
    for n in range(5):
        make_schedule(name=f"paused {n}")
        schedule_pause(name=f"paused {n}", until="1d")

    with django_assert_num_queries(1):
        assert schedules_resume_due() == []


def test_on_postgresql_the_look_reads_the_paused_until_index(postgresql_planner: None) -> None:
    make_schedule(name="paused")
    schedule_pause(name="paused", until="1d")

    with CaptureQueriesContext(connection) as captured:
        schedules_resume_due()

    [query] = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {query['sql']}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "paused_until" in plan
    assert "Seq Scan on scheduler_scheduleoptions" not in plan


def test_a_pause_moved_later_since_the_look_is_left_alone():
    make_schedule(name="moved")
    start = timezone.now()
    schedule_pause(name="moved", until="1s", now=start)
    ended_by = start + timedelta(seconds=2)
    schedule_pause(name="moved", until="1h", now=start)  # staff changed their mind

    assert schedules_resume(names=["moved"], ended_by=ended_by) == []
    assert not schedule_get("moved").enabled


def test_a_pause_that_cannot_end_stays_paused_and_is_not_tried_again():
    row = make_schedule(name="old")
    start = timezone.now()
    schedule_pause(name="old", until="1s", now=start)
    PeriodicTask.objects.filter(pk=row.pk).update(task="legacy.task")

    assert schedules_resume_due(now=start + timedelta(seconds=2)) == []

    assert not schedule_get("old").enabled
    assert ScheduleOptions.objects.get(pk=row.pk).paused_until is None


# --- Pause after failed runs ---------------------------------------------------------------------


def failed(name: str, task_id: str = "t") -> Any:
    return event_payload_of(
        type="task.failed",
        state="FAILURE",
        periodic_task_name=name,
        task_name="scheduler.ping",
        task_id=task_id,
        message="RuntimeError: boom",
    )


def succeeded(name: str) -> Any:
    return event_payload_of(
        type="task.succeeded", state="SUCCESS", periodic_task_name=name, task_name="scheduler.ping"
    )


def streak(name: str) -> int:
    return ScheduleOptions.objects.get(periodic_task__name=name).failure_streak


def test_it_pauses_itself_after_n_failed_runs_in_a_row_with_an_incident(
    alerting: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    make_channel()
    make_schedule(name="report")
    rule = make_rule("report failures", "failed", target_type="schedule", target="report")
    schedule_pause_on_failure(name="report", after=3)

    with django_capture_on_commit_callbacks(execute=True):  # the notifications are sent then
        for n in range(3):
            schedule_run_ended(failed("report", task_id=f"t{n}"))

    row = schedule_get("report")
    pause = pause_of(row)
    assert not row.enabled
    assert pause is not None
    assert (pause.by, pause.note) == (None, "paused after 3 failed runs in a row")
    [event] = events("schedule.paused")
    assert event.payload["source"] == "system"
    incident = Incident.objects.get(rule=rule)
    assert incident.subject == "paused:report"
    assert incident.title == "schedule 'report' paused after 3 failed runs in a row"
    assert incident.details["task_id"] == "t2"
    assert [notification.subject for _, notification in alerting] == [
        "[DOWN] schedule 'report' paused after 3 failed runs in a row"
    ]
    # Resumed: its incident recovers, and the count starts again.
    schedule_resume(name="report")
    incident.refresh_from_db()
    assert incident.resolved_at is not None
    assert streak("report") == 0


def test_a_success_in_between_starts_the_count_again():
    make_schedule(name="report")
    schedule_pause_on_failure(name="report", after=2)

    schedule_run_ended(failed("report"))
    schedule_run_ended(succeeded("report"))
    schedule_run_ended(failed("report"))

    assert schedule_get("report").enabled
    assert streak("report") == 1
    schedule_run_ended(failed("report"))
    assert not schedule_get("report").enabled


def test_a_schedule_without_the_setting_costs_no_query_after_the_first(
    django_assert_num_queries,
):
    make_schedule(name="plain")
    schedule_run_ended(succeeded("plain"))  # reads the setting once

    with django_assert_num_queries(0):
        for _ in range(3):
            schedule_run_ended(failed("plain"))
            schedule_run_ended(succeeded("plain"))

    assert streak("plain") == 0
    assert schedule_get("plain").enabled


@pytest.mark.parametrize("after", [0, -1, 1001, 2.5, True, "3"])
def test_it_refuses_a_count_out_of_range_naming_the_field(after):
    make_schedule(name="report")

    with pytest.raises(ScheduleError) as raised:
        schedule_pause_on_failure(name="report", after=after)

    assert "pause_after_failures" in raised.value.errors
    assert ScheduleOptions.objects.get(periodic_task__name="report").pause_after_failures is None


def test_setting_it_is_audited_and_none_turns_it_off():
    make_schedule(name="report")

    schedule_pause_on_failure(name="report", after=5, source=Source.CLI)
    schedule_pause_on_failure(name="report", after=None, source=Source.CLI)

    assert [entry.changes for entry in AuditEntry.objects.filter(action="updated")] == [
        {"pause_after_failures": [5, None]},
        {"pause_after_failures": [None, 5]},
    ]
