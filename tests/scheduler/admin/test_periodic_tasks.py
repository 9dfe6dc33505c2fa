"""The periodic task and task result admins, through the Django test client.

Queuing is checked without a worker where possible: the run's audit entry and event, and the
message itself in the Redis list of its queue (kombu names it after the queue, behind the key
prefix). One integration test runs the button against a real worker.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError
from pydantic import Field

from config.celery import app as celery_app
from scheduler.catalog import CatalogEntry, Params, catalog, load_catalog
from scheduler.core.redis_connection import get_redis
from scheduler.models import AuditEntry, ScheduleOptions, Source, TaskEvent
from scheduler.services import ScheduleError, schedule_create
from scheduler.worker.schedule_state import schedule_states_rebuild
from tests.forms import ECHO, periodic_task_form
from tests.processes import wait_for

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:django_celery_beat_periodictask_add")
CHANGELIST_URL = reverse("admin:django_celery_beat_periodictask_changelist")
RESULTS_URL = reverse("admin:django_celery_results_taskresult_changelist")


class EchoParams(Params):
    times: int = Field(1, ge=1, description="how many times to echo")
    text: str = Field("hi", description="what to echo")


@pytest.fixture(autouse=True)
def echo_entry(monkeypatch: pytest.MonkeyPatch) -> CatalogEntry:
    """A catalog entry with typed parameters, registered for the test only."""
    entry = CatalogEntry(name=ECHO, description="Echo a text (tests).", params=EchoParams)
    monkeypatch.setitem(catalog._entries, ECHO, entry)
    return entry


@pytest.fixture
def viewer(db: None) -> User:
    """Staff who may look at periodic tasks but not change or run them."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_periodictask", content_type__app_label="django_celery_beat"
        ),
        Permission.objects.get(
            codename="view_taskresult", content_type__app_label="django_celery_results"
        ),
    )
    return user


@pytest.fixture
def viewer_client(viewer: User) -> Client:
    client = Client()
    client.force_login(viewer)
    return client


def change_url(periodic_task: PeriodicTask) -> str:
    return reverse("admin:django_celery_beat_periodictask_change", args=[periodic_task.pk])


def run_now_url(periodic_task: PeriodicTask) -> str:
    return reverse("admin:django_celery_beat_periodictask_run_now", args=[periodic_task.pk])


def change_data(periodic_task: PeriodicTask, **overrides: Any) -> dict[str, Any]:
    """What the change form posts back untouched (its initial values), plus `overrides`."""
    options = ScheduleOptions.objects.get(periodic_task=periodic_task)
    data = periodic_task_form(
        name=periodic_task.name,
        task=periodic_task.task,
        kwargs=periodic_task.kwargs,
        description=periodic_task.description,
        schedule=options.phrase,
        timezone=options.timezone,
        interval=periodic_task.interval_id or "",
        crontab=periodic_task.crontab_id or "",
        clocked=periodic_task.clocked_id or "",
        overlap=options.overlap,
        misfire=options.misfire,
        queue=periodic_task.queue or "",
        one_off="on" if periodic_task.one_off else None,
        enabled="on" if periodic_task.enabled else None,
    )
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def make_schedule(name: str = "echo", schedule: str = "every day at 2am", **kwargs: Any):
    kwargs.setdefault("task", ECHO)
    return schedule_create(name=name, schedule=schedule, source=Source.CLI, **kwargs)


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    form = response.context["adminform"].form
    return {field: [str(e) for e in errors] for field, errors in form.errors.items()}


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def take_queued(queue: str, task_id: str) -> dict[str, Any] | None:
    """The message of `task_id` in the Redis list of `queue`, removed so no worker runs it."""
    client = get_redis()
    key = f"{settings.REDIS_KEY_PREFIX}{queue}"
    for raw in cast("list[bytes]", client.lrange(key, 0, -1)):
        message = json.loads(raw)
        if message["headers"]["id"] == task_id:
            client.lrem(key, 1, raw.decode())
            return message
    return None


def nothing_saved() -> None:
    assert not PeriodicTask.objects.exists()
    assert not ScheduleOptions.objects.exists()
    assert not AuditEntry.objects.exists()


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
        ({"misfire": "sometimes"}, "misfire", "Select a valid choice"),
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
        change_url(task), change_data(task, overlap="skip", misfire="skip")
    )

    assert response.status_code == 302, form_errors(response)
    options = ScheduleOptions.objects.get(periodic_task=task)
    assert (options.overlap, options.misfire) == ("skip", "skip")
    changes = AuditEntry.objects.get(action="updated").changes
    assert changes["overlap"] == ["default", "skip"]


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


def test_it_deletes_a_selection_through_the_service(admin_client):
    tasks = [make_schedule(name=f"old {n}") for n in range(2)]

    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [t.pk for t in tasks], "post": "yes"},
    )

    assert response.status_code == 302
    assert not PeriodicTask.objects.exists()
    assert sorted(
        AuditEntry.objects.filter(action="deleted").values_list("periodic_task_name", flat=True)
    ) == ["old 0", "old 1"]


def test_it_lists_a_one_off_task_by_its_time(admin_client):
    make_schedule(name="later", schedule="2099-01-15 14:30", tz="Europe/Paris")

    content = admin_client.get(CHANGELIST_URL).content.decode()

    assert "once, at 2099-01-15 14:30 CET" in content


# --- Preview and audit trail ---------------------------------------------------------------------


@time_machine.travel(datetime(2025, 3, 7, 12, 0, tzinfo=UTC), tick=False)
def test_it_previews_five_runs_and_warns_of_a_run_moved_by_dst(admin_client):
    task = make_schedule(schedule="30 2 * * *", tz="America/New_York")

    response = admin_client.get(change_url(task))

    content = response.content.decode()
    assert "In America/New_York:" in content
    for run in (
        "Sat 2025-03-08 02:30 EST",
        "Sun 2025-03-09 03:30 EDT",  # 02:30 does not exist that day
        "Mon 2025-03-10 02:30 EDT",
        "Tue 2025-03-11 02:30 EDT",
        "Wed 2025-03-12 02:30 EDT",
    ):
        assert f"<li>{run}" in content
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

    assert content.count("<li>Tue 2025-06-0") + content.count("<li>Wed 2025-06-0") == 2
    assert "DST:" not in content


@time_machine.travel(datetime(2025, 6, 2, 12, 0, tzinfo=UTC), tick=False)
def test_it_previews_an_interval_counted_from_its_last_run(admin_client):
    task = make_schedule(schedule="every 2 hours")
    PeriodicTask.objects.filter(pk=task.pk).update(
        last_run_at=datetime(2025, 6, 2, 11, 30, tzinfo=UTC)
    )

    content = admin_client.get(change_url(task)).content.decode()

    for hour in (13, 15, 17, 19, 21):
        assert f"<li>Mon 2025-06-02 {hour}:30 UTC" in content
    assert "<li>Mon 2025-06-02 23:30 UTC" not in content


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


# --- Run now -------------------------------------------------------------------------------------


def test_it_queues_a_run_from_the_button(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    task = make_schedule(name="ping now", task="scheduler.ping", schedule="every day at 3am")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(run_now_url(task), follow=True)

    assert response.redirect_chain == [(change_url(task), 302)]
    entry = AuditEntry.objects.get(action="run_now")
    assert (entry.source, entry.actor) == ("admin", admin_user)
    task_id = entry.changes["task_id"][1]
    assert TaskEvent.objects.filter(type="schedule.run_now", periodic_task_name="ping now").exists()
    assert TaskEvent.objects.filter(type="task.queued", task_id=task_id).exists()
    message = take_queued("default", task_id)
    assert message is not None, "the run is not in the Redis list of its queue"
    assert message["headers"]["task"] == "scheduler.ping"
    assert message["headers"]["periodic_task_name"] == "ping now"
    assert any("Queued to run now: ping now" in text for text in page_messages(response))


def test_it_shows_the_run_now_button_to_staff_who_may_run(admin_client, viewer_client):
    task = make_schedule()

    assert 'id="run-now-form"' in admin_client.get(change_url(task)).content.decode()
    viewer_page = viewer_client.get(change_url(task))
    assert viewer_page.status_code == 200
    content = viewer_page.content.decode()
    assert 'id="run-now-form"' not in content
    assert "every day at 2am" in content  # the form's own fields, shown read-only
    assert "Next runs" in content


def test_it_lets_staff_with_change_permission_run_now(viewer, django_capture_on_commit_callbacks):
    viewer.user_permissions.add(
        Permission.objects.get(
            codename="change_periodictask", content_type__app_label="django_celery_beat"
        )
    )
    client = Client()
    client.force_login(viewer)
    task = make_schedule(task="scheduler.ping")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(run_now_url(task))

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="run_now")
    assert entry.actor == viewer
    assert take_queued("default", entry.changes["task_id"][1]) is not None


def test_it_forbids_run_now_without_change_permission(viewer_client):
    task = make_schedule()

    response = viewer_client.post(run_now_url(task))

    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_runs_now_only_on_post(admin_client):
    task = make_schedule()

    assert admin_client.get(run_now_url(task)).status_code == 405
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_requires_the_csrf_token_to_run_now(admin_user):
    task = make_schedule()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post(run_now_url(task)).status_code == 403
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    task = make_schedule()

    response = client.post(run_now_url(task))

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_queues_runs_from_the_action(admin_client, django_capture_on_commit_callbacks):
    first = make_schedule(name="first", task="scheduler.ping")
    second = make_schedule(name="second", params={"times": 2})

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST_URL,
            {"action": "run_now", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )

    entries = AuditEntry.objects.filter(action="run_now")
    assert sorted(entries.values_list("periodic_task_name", flat=True)) == ["first", "second"]
    for entry in entries:
        message = take_queued("default", entry.changes["task_id"][1])
        assert message is not None
        assert message["headers"]["periodic_task_name"] == entry.periodic_task_name
    assert any("Queued to run now" in text for text in page_messages(response))


def test_it_refuses_to_run_a_task_outside_the_catalog(admin_client):
    interval = IntervalSchedule.objects.create(every=1, period="days")
    legacy = PeriodicTask.objects.create(
        name="legacy", task="celery.backend_cleanup", interval=interval
    )

    response = admin_client.post(
        CHANGELIST_URL, {"action": "run_now", "_selected_action": [legacy.pk]}, follow=True
    )

    assert any(
        "legacy was not run" in text
        and "'celery.backend_cleanup', which is outside the catalog" in text
        for text in page_messages(response)
    )
    assert not AuditEntry.objects.filter(action="run_now").exists()
    assert not TaskEvent.objects.filter(type="task.queued").exists()


@pytest.mark.django_db(transaction=True)
def test_it_says_so_when_the_broker_is_down(admin_client, monkeypatch):
    # Committed for real (transaction=True), so the message is sent inside the request.
    task = make_schedule(name="unlucky", task="scheduler.ping")

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to redis. Connection refused.")

    monkeypatch.setattr(celery_app, "send_task", broker_down)

    response = admin_client.post(run_now_url(task), follow=True)

    assert response.status_code == 200
    assert any(
        "unlucky was not run" in text and "could not be reached" in text
        for text in page_messages(response)
    )
    failed = TaskEvent.objects.get(type="task.failed", periodic_task_name="unlucky")
    assert "could not be queued: OperationalError" in failed.message


def test_it_offers_no_actions_to_staff_who_may_not_change(viewer_client):
    make_schedule()

    response = viewer_client.get(CHANGELIST_URL)

    assert response.status_code == 200
    assert 'name="action"' not in response.content.decode()


# --- Enable and disable --------------------------------------------------------------------------


def test_it_disables_and_enables_through_the_service(admin_client, admin_user):
    tasks = [make_schedule(name=f"task {n}") for n in range(3)]
    pks = [task.pk for task in tasks]

    admin_client.post(CHANGELIST_URL, {"action": "disable_tasks", "_selected_action": pks[:2]})

    assert list(PeriodicTask.objects.order_by("name").values_list("enabled", flat=True)) == [
        False,
        False,
        True,
    ]
    disabled = AuditEntry.objects.filter(action="disabled")
    assert disabled.count() == 2
    assert {(entry.source, entry.actor) for entry in disabled} == {("admin", admin_user)}

    response = admin_client.post(
        CHANGELIST_URL, {"action": "enable_tasks", "_selected_action": pks}, follow=True
    )

    assert PeriodicTask.objects.filter(enabled=True).count() == 3
    assert AuditEntry.objects.filter(action="enabled").count() == 2
    assert any("2 tasks enabled (1 already enabled)" in text for text in page_messages(response))


def test_it_toggles_through_the_service(admin_client):
    on = make_schedule(name="on")
    off = make_schedule(name="off", enabled=False)

    admin_client.post(
        CHANGELIST_URL, {"action": "toggle_tasks", "_selected_action": [on.pk, off.pk]}
    )

    assert dict(PeriodicTask.objects.values_list("name", "enabled")) == {"on": False, "off": True}
    assert set(
        AuditEntry.objects.filter(action__in=["enabled", "disabled"]).values_list(
            "periodic_task_name", "action"
        )
    ) == {("on", "disabled"), ("off", "enabled")}


# --- Changelist ----------------------------------------------------------------------------------


def _results_for(task: PeriodicTask, *statuses: str) -> None:
    started = timezone.now() - timedelta(hours=1)
    for n, status in enumerate(statuses):
        task_id = f"{task.name}-{n}"
        TaskResult.objects.create(
            task_id=task_id,
            task_name=task.task,
            periodic_task_name=task.name,
            status=status,
            # As the results backend stores a kwargsrepr: a JSON string of the JSON arguments.
            task_kwargs=json.dumps(task.kwargs),
        )
        # date_created and date_done are automatic: set them as if the runs took 1.5 s each,
        # one after another.
        TaskResult.objects.filter(task_id=task_id).update(
            date_created=started + timedelta(minutes=n),
            date_started=started + timedelta(minutes=n),
            date_done=started + timedelta(minutes=n, seconds=1.5),
        )
    # Written past the result backend: the schedule's state is rebuilt, as retention does.
    schedule_states_rebuild(names=[task.name])


def test_it_lists_the_last_status_duration_and_history_link(admin_client):
    task = make_schedule(name="reporter")
    _results_for(task, "SUCCESS", "FAILURE")

    content = admin_client.get(CHANGELIST_URL).content.decode()

    last = re.search(r'<td class="field-last_status">(.*?)</td>', content)
    assert last is not None
    assert f'href="{RESULTS_URL}?periodic_task_name=reporter"' in last.group(1)
    assert ">FAILURE</a>" in last.group(1)
    assert last.group(1).endswith(" · 1.50 s</span>")


def test_it_lists_without_a_query_per_row(admin_client, django_assert_max_num_queries):
    for n in range(3):
        _results_for(make_schedule(name=f"few {n}"), "SUCCESS")
    with django_assert_max_num_queries(50) as few:
        admin_client.get(CHANGELIST_URL)
    for n in range(12):
        _results_for(make_schedule(name=f"many {n}"), "SUCCESS", "FAILURE")

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(CHANGELIST_URL)

    assert response.content.decode().count('<td class="field-last_status">') == 15


# --- Results -------------------------------------------------------------------------------------


def test_it_retries_a_catalog_result_with_the_same_arguments(
    admin_client, django_capture_on_commit_callbacks
):
    task = make_schedule(name="echoer", params={"times": 4, "text": "again"})
    _results_for(task, "FAILURE")
    result = TaskResult.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            RESULTS_URL, {"action": "retry_selected", "_selected_action": [result.pk]}, follow=True
        )

    queued = TaskEvent.objects.get(type="task.queued", task_name=ECHO)
    message = take_queued("default", queued.task_id)
    assert message is not None
    assert message["headers"]["periodic_task_name"] == "echoer"
    assert json.loads(message["headers"]["kwargsrepr"]) == {"times": 4, "text": "again"}
    assert any("Queued again" in text for text in page_messages(response))


def test_it_refuses_to_retry_a_result_outside_the_catalog(
    admin_client, django_capture_on_commit_callbacks
):
    result = TaskResult.objects.create(
        task_id="legacy-1", task_name="celery.backend_cleanup", status="FAILURE", task_kwargs="{}"
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            RESULTS_URL, {"action": "retry_selected", "_selected_action": [result.pk]}, follow=True
        )

    assert callbacks == []
    assert not TaskEvent.objects.filter(type="task.queued").exists()
    assert any(
        "was not retried" in text and "not in the catalog" in text
        for text in page_messages(response)
    )


def test_it_retries_the_catalog_rows_of_a_mixed_selection(
    admin_client, django_capture_on_commit_callbacks
):
    task = make_schedule(name="echoer")
    _results_for(task, "FAILURE")
    legacy = TaskResult.objects.create(task_id="legacy-1", task_name="not.ours", status="FAILURE")
    pks = [*TaskResult.objects.values_list("pk", flat=True)]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            RESULTS_URL, {"action": "retry_selected", "_selected_action": pks}, follow=True
        )

    texts = page_messages(response)
    assert any(f"not.ours ({legacy.task_id}) was not retried" in text for text in texts)
    assert any("Queued again: tests.admin_echo" in text for text in texts)
    queued = TaskEvent.objects.get(type="task.queued")
    assert take_queued("default", queued.task_id) is not None


def test_it_forbids_retry_without_permission_to_run(viewer_client):
    task = make_schedule(name="echoer")
    _results_for(task, "FAILURE")

    response = viewer_client.get(RESULTS_URL)

    assert response.status_code == 200
    assert "retry_selected" not in response.content.decode()


def test_it_links_results_back_to_their_periodic_task(admin_client, django_assert_max_num_queries):
    task = make_schedule(name="linked")
    _results_for(task, "SUCCESS", "FAILURE")
    TaskResult.objects.create(task_id="gone-1", periodic_task_name="deleted one", status="SUCCESS")

    # 13: the person's time zone is read once per request (scheduler/dashboard/timezones.py).
    with django_assert_max_num_queries(13):
        content = admin_client.get(RESULTS_URL).content.decode()

    assert content.count(f'<a href="{change_url(task)}">linked</a>') == 2
    assert "deleted one (deleted)" in content
    result = TaskResult.objects.get(task_id="linked-0")
    detail = admin_client.get(
        reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
    ).content.decode()
    assert f'<a href="{change_url(task)}">linked</a>' in detail


def test_it_filters_the_run_history_of_one_periodic_task(admin_client):
    _results_for(make_schedule(name="mine"), "SUCCESS")
    _results_for(make_schedule(name="other"), "SUCCESS")

    response = admin_client.get(RESULTS_URL, {"periodic_task_name": "mine"})

    assert [row.task_id for row in response.context["cl"].result_list] == ["mine-0"]


# --- With a real worker --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_on_a_real_worker_from_the_button(celery_worker, admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        ADD_URL, periodic_task_form(name="ping via admin", task="scheduler.ping", kwargs="{}")
    )
    assert response.status_code == 302, form_errors(response)
    task = PeriodicTask.objects.get(name="ping via admin")

    response = client.post(run_now_url(task))

    assert response.status_code == 302
    runs = TaskResult.objects.filter(periodic_task_name="ping via admin", status="SUCCESS")
    wait_for(runs.exists, timeout=30, what="the run queued by the button to succeed")
    assert runs.values_list("worker", flat=True).get() == celery_worker.hostname
    history = client.get(RESULTS_URL, {"periodic_task_name": "ping via admin"})
    assert "SUCCESS" in history.content.decode()
    changelist = client.get(CHANGELIST_URL).content.decode()
    assert re.search(r'<td class="field-last_status"><a [^>]*>SUCCESS</a>', changelist)


# --- The task's default overlap policy; periodic tasks outside the catalog -----------------------


def test_it_offers_the_tasks_default_overlap_policy_naming_it_and_stores_it(admin_client):
    task = make_schedule(name="napper", task="scheduler.sleep", params={"seconds": 1})
    declared = load_catalog().get("scheduler.sleep").overlap.value

    form = admin_client.get(change_url(task)).context["adminform"].form
    choices = dict(form.fields["overlap"].choices)
    response = admin_client.post(change_url(task), change_data(task, overlap="default"))

    assert choices["default"] == f"The task's default (currently: {declared})"
    assert set(choices) == {"default", "allow", "skip"}
    assert form.initial["overlap"] == "default"
    assert response.status_code == 302, form_errors(response)
    assert ScheduleOptions.objects.get(periodic_task=task).overlap == "default"


def _outside_catalog(name: str = "legacy", *, enabled: bool = False) -> PeriodicTask:
    interval = IntervalSchedule.objects.create(every=1, period="days")
    return PeriodicTask.objects.create(
        name=name, task="billing.send_invoices", interval=interval, enabled=enabled
    )


def test_it_labels_a_periodic_task_outside_the_catalog_in_the_list(admin_client):
    _outside_catalog()
    make_schedule(name="ours")

    content = admin_client.get(CHANGELIST_URL).content.decode()

    assert content.count("outside the catalog") == 1
    assert "billing.send_invoices — outside the catalog" in content


def test_it_refuses_to_enable_or_edit_a_periodic_task_outside_the_catalog(admin_client):
    legacy = _outside_catalog()

    enabled = admin_client.post(
        CHANGELIST_URL, {"action": "enable_tasks", "_selected_action": [legacy.pk]}, follow=True
    )
    edited = admin_client.get(change_url(legacy))
    form = edited.context["adminform"].form
    saved = admin_client.post(
        change_url(legacy),
        {
            **{name: value for name, value in form.initial.items() if value is not None},
            **periodic_task_form(
                name="legacy",
                task="billing.send_invoices",
                kwargs="{}",
                schedule="",
                timezone="UTC",
                interval=legacy.interval_id,
                overlap="default",
                description="renamed?",
            ),
        },
    )

    assert any(
        "Nothing was enabled: task: 'legacy' run 'billing.send_invoices', outside the catalog"
        in text
        for text in page_messages(enabled)
    )
    assert "billing.send_invoices (outside the catalog)" in edited.content.decode()
    assert saved.status_code == 200
    (message,) = form_errors(saved)["task"]
    assert "can be disabled or deleted, not edited" in message
    legacy.refresh_from_db()
    assert (legacy.enabled, legacy.description) == (False, "")


def test_it_disables_and_deletes_a_periodic_task_outside_the_catalog(admin_client):
    legacy = _outside_catalog(enabled=True)

    admin_client.post(CHANGELIST_URL, {"action": "disable_tasks", "_selected_action": [legacy.pk]})
    legacy.refresh_from_db()
    assert not legacy.enabled
    admin_client.post(
        reverse("admin:django_celery_beat_periodictask_delete", args=[legacy.pk]), {"post": "yes"}
    )

    assert not PeriodicTask.objects.filter(name="legacy").exists()
