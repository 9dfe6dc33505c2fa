"""The periodic task admin's add and change forms, through the Django test client: a schedule
phrase or a stock schedule, parameters checked against the catalog, every error on its field
with nothing saved, edits and deletion through the service with their audit entries, the preview
of the next runs (DST warnings included), the audit trail, and the task's default overlap
policy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from scheduler.catalog import load_catalog
from scheduler.models import AuditEntry, ScheduleOptions, TaskEvent
from scheduler.services import ScheduleError
from tests.forms import ECHO, periodic_task_form
from tests.scheduler.admin.helpers import (
    ADD_URL,
    CHANGELIST_URL,
    change_data,
    change_url,
    form_errors,
    make_schedule,
    nothing_saved,
    page_messages,
)

# `echo_entry` (conftest.py): the catalog entry these tests' periodic tasks run.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("echo_entry")]


# --- Add -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "kind", "expected"),
    [
        (
            "every monday at 8am",
            "crontab",
            {"minute": "0", "hour": "8", "day_of_week": "1", "timezone": "Europe/London"},
        ),
        ("0 9 * * 1", "crontab", {"minute": "0", "hour": "9", "day_of_week": "1"}),
        ("every 5 minutes", "interval", {"every": 5, "period": "minutes"}),
    ],
)
def test_it_creates_a_periodic_task_with_options_and_audit_entry_from_a_schedule(
    admin_client, admin_user, schedule, kind, expected
):
    response = admin_client.post(ADD_URL, periodic_task_form(schedule=schedule, overlap="skip"))

    assert response.status_code == 302, form_errors(response)
    task = PeriodicTask.objects.get(name="nightly echo")
    assert task.task == ECHO
    assert json.loads(task.kwargs) == {"times": 3, "text": "hi"}
    assert task.queue == "default"
    row = getattr(task, kind)
    assert {field: str(getattr(row, field)) for field in expected} == {
        field: str(value) for field, value in expected.items()
    }
    options = ScheduleOptions.objects.get(periodic_task=task)
    assert (options.phrase, options.timezone) == (schedule, "Europe/London")
    assert (options.overlap, options.misfire) == ("skip", "run_once")
    entry = AuditEntry.objects.get(periodic_task=task)
    assert (entry.action, entry.source, entry.actor) == ("created", "admin", admin_user)
    assert entry.changes["schedule"] == [None, schedule]
    assert TaskEvent.objects.filter(type="schedule.created", periodic_task_name=task.name).exists()


def test_it_creates_a_one_off_task_from_a_relative_phrase(admin_client):
    response = admin_client.post(ADD_URL, periodic_task_form(schedule="tomorrow at 9am"))

    assert response.status_code == 302, form_errors(response)
    task = PeriodicTask.objects.get(name="nightly echo")
    assert task.clocked is not None
    assert task.one_off is True


def test_it_creates_a_periodic_task_on_a_stock_schedule_through_the_service(admin_client):
    interval = IntervalSchedule.objects.create(every=10, period="minutes")

    response = admin_client.post(ADD_URL, periodic_task_form(schedule="", interval=interval.pk))

    assert response.status_code == 302, form_errors(response)
    task = PeriodicTask.objects.get(name="nightly echo")
    assert task.interval == interval
    assert json.loads(task.kwargs) == {"times": 3, "text": "hi"}  # checked and defaulted
    assert ScheduleOptions.objects.get(periodic_task=task).phrase == ""
    assert AuditEntry.objects.get(periodic_task=task).action == "created"


def test_it_shows_the_catalog_with_descriptions_and_the_parameter_schema(admin_client):
    response = admin_client.get(ADD_URL)

    content = response.content.decode()
    assert f'<option value="{ECHO}">{ECHO}: Echo a text (tests).</option>' in content
    assert "scheduler.ping: Answer pong" in content
    form = response.context["adminform"].form
    task_names = [value for value, _ in form.fields["task"].choices]
    assert "celery.backend_cleanup" not in task_names  # registered with Celery, not in the catalog
    # The JSON Schema of every entry rides along for the select to show as help.
    schemas = response.context["catalog_params_help"]
    assert "how many times to echo" in schemas[ECHO]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"schedule": "61 * * * *"}, "schedule", "minute 61 is out of range 0-59"),
        ({"schedule": "0 25 * * *"}, "schedule", "hour 25 is out of range 0-23"),
        ({"schedule": "every blue moon"}, "schedule", "cannot read"),
        ({"schedule": "2001-01-01 10:00"}, "schedule", "is in the past"),
        ({"task": "tests.not_there"}, "task", "not in the catalog"),
        ({"task": ""}, "task", "This field is required"),
        ({"kwargs": '{"times": "many"}'}, "kwargs", "times: Input should be a valid integer"),
        ({"kwargs": '{"times": 0}'}, "kwargs", "greater than or equal to 1"),
        ({"kwargs": '{"colour": "red"}'}, "kwargs", "colour: is not a parameter of this task"),
        ({"kwargs": "[1, 2]"}, "kwargs", "must be a JSON object"),
        ({"kwargs": '{"times": 3'}, "kwargs", "malformed JSON"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone 'Mars/Olympus_Mons'"),
        ({"queue": "nowhere"}, "queue", "Select a valid choice"),
        ({"schedule": ""}, "schedule", "Write a schedule"),
        ({"catchup": "sometimes"}, "catchup", "Select a valid choice"),
        ({"catchup_window": "-1"}, "catchup_window", "-1 is less than 1"),
        ({"catchup_window": "soon"}, "catchup_window", "'soon' is not a duration"),
        ({"jitter": "2h"}, "jitter", "7200 seconds is more than the limit, 3600 seconds"),
        ({"max_runs": "0"}, "max_runs", "0 would never let it run"),
        ({"pause_after_failures": "0"}, "pause_after_failures", "0 would never let it run"),
        (
            {
                "start_time_0": "2030-01-02",
                "start_time_1": "09:00:00",
                "expires_0": "2030-01-01",
                "expires_1": "09:00:00",
            },
            "expires",
            "is not after start_time",
        ),
        ({"expires_0": "2001-01-01", "expires_1": "09:00:00"}, "expires", "is in the past"),
    ],
)
def test_it_puts_bad_input_on_its_field_and_saves_nothing(admin_client, overrides, field, message):
    response = admin_client.post(ADD_URL, periodic_task_form(**overrides))

    errors = form_errors(response)
    assert any(message in error for error in errors.get(field, [])), errors
    nothing_saved()


def test_it_refuses_a_phrase_and_a_stock_schedule_together(admin_client):
    interval = IntervalSchedule.objects.create(every=10, period="minutes")

    response = admin_client.post(ADD_URL, periodic_task_form(interval=interval.pk))

    assert "not both" in form_errors(response)["schedule"][0]
    nothing_saved()


def test_it_refuses_a_name_already_taken(admin_client):
    make_schedule(name="nightly echo")

    response = admin_client.post(ADD_URL, periodic_task_form())

    assert "already exists" in form_errors(response)["name"][0]
    assert PeriodicTask.objects.count() == 1


def test_it_shows_every_error_of_one_submission_at_once(admin_client):
    response = admin_client.post(
        ADD_URL,
        periodic_task_form(schedule="0 99 * * *", kwargs='{"times": "x"}', timezone="Nowhere"),
    )

    errors = form_errors(response)
    assert {"kwargs", "timezone"} <= set(errors)
    nothing_saved()


def test_it_stores_empty_headers_as_an_empty_object(admin_client):
    response = admin_client.post(ADD_URL, periodic_task_form(headers=""))

    assert response.status_code == 302, form_errors(response)
    assert PeriodicTask.objects.get().headers == "{}"


def test_it_refuses_a_time_zone_a_stock_crontab_would_ignore(admin_client):
    crontab = CrontabSchedule.objects.create(minute="0", hour="6", timezone="Asia/Tokyo")

    response = admin_client.post(
        ADD_URL, periodic_task_form(schedule="", crontab=crontab.pk, timezone="Europe/Paris")
    )

    assert "its own time zone, Asia/Tokyo" in form_errors(response)["timezone"][0]
    nothing_saved()


def test_it_refuses_a_stock_clocked_schedule_that_is_not_one_off(admin_client):
    clocked = ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(days=1))

    response = admin_client.post(ADD_URL, periodic_task_form(schedule="", clocked=clocked.pk))

    assert "clocked must be one off" in str(form_errors(response))
    nothing_saved()


def test_it_reports_a_save_the_service_refuses_after_the_form_passed(admin_client, monkeypatch):
    # A race: the name is taken between the form's checks and the service's.
    def refuse(**kwargs: Any) -> None:
        raise ScheduleError.on("name", "a periodic task named 'nightly echo' already exists")

    monkeypatch.setattr("scheduler.admin.periodic_tasks.schedule_save", refuse)

    response = admin_client.post(ADD_URL, periodic_task_form(), follow=True)

    assert response.redirect_chain == [(ADD_URL, 302)]
    assert any("Nothing was saved" in text for text in page_messages(response))
    nothing_saved()


# --- Change --------------------------------------------------------------------------------------


def test_it_edits_parameters_and_keeps_the_schedule_when_the_phrase_is_unchanged(
    admin_client, admin_user
):
    task = make_schedule(schedule="every monday at 8am", tz="Europe/London")
    crontab_id = task.crontab_id

    response = admin_client.post(
        change_url(task), change_data(task, kwargs='{"times": 7}', description="weekly")
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert json.loads(task.kwargs) == {"times": 7, "text": "hi"}
    assert task.description == "weekly"
    assert task.crontab_id == crontab_id
    assert ScheduleOptions.objects.get(periodic_task=task).phrase == "every monday at 8am"
    entry = AuditEntry.objects.filter(action="updated").get()
    assert (entry.source, entry.actor) == ("admin", admin_user)
    assert entry.changes["params"] == [{"times": 1, "text": "hi"}, {"times": 7, "text": "hi"}]
    assert entry.changes["description"] == ["", "weekly"]
    assert "schedule" not in entry.changes


def test_it_resolves_a_changed_phrase_through_the_parser(admin_client):
    task = make_schedule(schedule="every monday at 8am")

    response = admin_client.post(change_url(task), change_data(task, schedule="every 2 hours"))

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.crontab is None
    assert (task.interval.every, task.interval.period) == (2, "hours")
    assert ScheduleOptions.objects.get(periodic_task=task).phrase == "every 2 hours"
    changes = AuditEntry.objects.get(action="updated").changes
    assert changes["schedule"] == ["every monday at 8am", "every 2 hours"]


def test_it_switches_to_a_stock_schedule_and_forgets_the_phrase(admin_client):
    task = make_schedule(schedule="every monday at 8am")
    crontab = CrontabSchedule.objects.create(minute="15", hour="4", timezone="Asia/Tokyo")

    response = admin_client.post(change_url(task), change_data(task, crontab=crontab.pk))

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.crontab == crontab
    options = ScheduleOptions.objects.get(periodic_task=task)
    assert (options.phrase, options.timezone) == ("", "Asia/Tokyo")
    assert AuditEntry.objects.filter(action="updated").exists()


def test_it_changes_the_policies(admin_client):
    task = make_schedule()

    response = admin_client.post(
        change_url(task),
        change_data(
            task,
            overlap="buffer_one",
            catchup="none",
            catchup_window="1h",
            jitter="30",
            max_runs="5",
            pause_after_failures="3",
            start_time_0="2030-01-01",
            start_time_1="09:00:00",
            expires_0="2030-02-01",
            expires_1="09:00:00",
        ),
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    options = ScheduleOptions.objects.get(periodic_task=task)
    assert (options.overlap, options.catchup, options.catchup_window) == (
        "buffer_one",
        "none",
        3600,
    )
    assert options.misfire == "skip"  # kept in step for readers of earlier versions
    assert (options.jitter, options.max_runs, options.remaining_runs) == (30, 5, 5)
    assert options.pause_after_failures == 3
    zone = ZoneInfo(settings.TIME_ZONE)
    assert task.start_time == datetime(2030, 1, 1, 9, 0, tzinfo=zone)
    assert task.expires == datetime(2030, 2, 1, 9, 0, tzinfo=zone)
    changes = AuditEntry.objects.get(action="updated").changes
    assert changes["overlap"] == ["default", "buffer_one"]
    assert changes["catchup"] == ["latest", "none"]
    assert changes["max_runs"] == [None, 5]
    assert changes["end_time"] == [None, task.expires.isoformat()]
    # Shown back as saved; the same values again do not count the runs again.
    form = admin_client.get(change_url(task)).context["adminform"].form
    assert form.initial["catchup_window"] == 3600
    ScheduleOptions.objects.filter(periodic_task=task).update(remaining_runs=2)
    again = admin_client.post(change_url(task), change_data(task, description="again"))
    assert again.status_code == 302, form_errors(again)
    options.refresh_from_db()
    assert (options.max_runs, options.remaining_runs) == (5, 2)
    page = admin_client.get(change_url(task)).content.decode()
    assert "2 of 5 runs left" in page
    listed = admin_client.get(CHANGELIST_URL).content.decode()
    assert "catch-up: none · 2 of 5 runs left" in listed


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kwargs": '{"times": "lots"}'}, "kwargs"),
        ({"kwargs": "{"}, "kwargs"),
        ({"schedule": "every 0 minutes"}, "schedule"),
        ({"task": "os.system"}, "task"),
    ],
)
def test_it_changes_nothing_when_an_edit_is_bad(admin_client, overrides, field):
    task = make_schedule(params={"times": 2})
    before = PeriodicTask.objects.values().get(pk=task.pk)

    response = admin_client.post(change_url(task), change_data(task, **overrides))

    assert field in form_errors(response)
    assert PeriodicTask.objects.values().get(pk=task.pk) == before
    assert not AuditEntry.objects.filter(action="updated").exists()


def test_it_deletes_through_the_service_and_keeps_the_audit_trail(admin_client, admin_user):
    task = make_schedule()
    delete_url = reverse("admin:django_celery_beat_periodictask_delete", args=[task.pk])

    response = admin_client.post(delete_url, {"post": "yes"})

    assert response.status_code == 302
    assert not PeriodicTask.objects.exists()
    entry = AuditEntry.objects.get(action="deleted")
    assert (entry.periodic_task_name, entry.source, entry.actor) == ("echo", "admin", admin_user)


# --- Preview and audit trail ---------------------------------------------------------------------


@time_machine.travel(datetime(2025, 3, 7, 12, 0, tzinfo=UTC), tick=False)
def test_it_previews_ten_runs_and_warns_of_a_run_moved_by_dst(admin_client):
    task = make_schedule(schedule="30 2 * * *", tz="America/New_York")

    response = admin_client.get(change_url(task))

    content = response.content.decode()
    assert "Next runs in America/New_York and in UTC:" in content
    for run, utc in (
        ("Sat 2025-03-08 02:30 EST", "Sat 2025-03-08 07:30 UTC"),
        ("Sun 2025-03-09 03:30 EDT", "Sun 2025-03-09 07:30 UTC"),  # 02:30 does not exist then
        ("Mon 2025-03-10 02:30 EDT", "Mon 2025-03-10 06:30 UTC"),
        ("Mon 2025-03-17 02:30 EDT", "Mon 2025-03-17 06:30 UTC"),
    ):
        assert f'<li class="scheduler-preview-run">{run}' in content
        assert f'<span class="scheduler-preview-utc"> = {utc}</span>' in content
    assert content.count('<li class="scheduler-preview-run">') == 10
    assert content.count('<li class="warning">DST:') == 1
    assert "02:30 does not exist that day: the run happens at 03:30 EDT instead" in content


@time_machine.travel(datetime(2025, 10, 31, 12, 0, tzinfo=UTC), tick=False)
def test_it_warns_of_a_wall_time_repeated_by_dst(admin_client):
    task = make_schedule(schedule="every day at 1:30", tz="America/New_York")

    content = admin_client.get(change_url(task)).content.decode()

    assert "01:30 happens twice that day: the job runs once" in content


@time_machine.travel(datetime(2025, 6, 2, 12, 0, tzinfo=UTC), tick=False)
def test_it_previews_without_warnings_when_no_clock_changes(admin_client):
    task = make_schedule(schedule="30 2 * * *", tz="America/New_York")

    content = admin_client.get(change_url(task)).content.decode()

    runs = ('<li class="scheduler-preview-run">Tue 2025-06-0', 'preview-run">Wed 2025-06-0')
    assert sum(content.count(run) for run in runs) == 2
    assert "DST:" not in content


@time_machine.travel(datetime(2025, 6, 2, 12, 0, tzinfo=UTC), tick=False)
def test_it_previews_an_interval_counted_from_its_last_run(admin_client):
    task = make_schedule(schedule="every 2 hours")
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=datetime(2025, 6, 2, 11, 30, tzinfo=UTC)
    )

    content = admin_client.get(change_url(task)).content.decode()

    # Ten runs, two hours apart from 11:30: 13:30 today to 07:30 tomorrow.
    for hour in (13, 15, 17, 19, 21, 23):
        assert f'<li class="scheduler-preview-run">Mon 2025-06-02 {hour}:30 UTC' in content
    assert '<li class="scheduler-preview-run">Tue 2025-06-03 07:30 UTC' in content
    assert '<li class="scheduler-preview-run">Tue 2025-06-03 09:30 UTC' not in content


@time_machine.travel(datetime(2025, 6, 2, 12, 0, tzinfo=UTC), tick=False)
def test_it_says_when_a_disabled_task_will_not_run(admin_client):
    task = make_schedule(enabled=False)

    content = admin_client.get(change_url(task)).content.decode()

    assert "The task is disabled" in content


def test_it_shows_the_audit_trail_of_the_task(admin_client):
    task = make_schedule()
    admin_client.post(change_url(task), change_data(task, description="now with a description"))

    content = admin_client.get(change_url(task)).content.decode()

    assert "Audit trail" in content
    # Newest first: the edit in the admin, then the creation from the command line.
    updated = content.index("<td>Updated</td><td>admin</td><td>Admin</td>")
    created = content.index("<td>Created</td><td></td><td>Command line</td>")
    assert updated < created
    assert (
        "<strong>description</strong>: &quot;&quot; &rarr; &quot;now with a description&quot;"
        in content
    )


# --- The task's default overlap policy -----------------------------------------------------------


def test_it_offers_the_tasks_default_overlap_policy_naming_it_and_stores_it(admin_client):
    task = make_schedule(name="napper", task="scheduler.sleep", params={"seconds": 1})
    declared = load_catalog().get("scheduler.sleep").overlap.value

    form = admin_client.get(change_url(task)).context["adminform"].form
    choices = dict(form.fields["overlap"].choices)
    response = admin_client.post(change_url(task), change_data(task, overlap="default"))

    assert choices["default"] == f"The task's default (currently: {declared})"
    assert set(choices) == {
        "default",
        "allow",
        "skip",
        "buffer_one",
        "buffer_all",
        "cancel_other",
        "terminate_other",
    }
    assert form.initial["overlap"] == "default"
    assert response.status_code == 302, form_errors(response)
    assert ScheduleOptions.objects.get(periodic_task=task).overlap == "default"
