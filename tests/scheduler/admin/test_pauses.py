"""The periodic task admin's pauses: the "Pause" action asks why and until when (a second step),
pauses through the service and shows the pause back in the list and on the change page; an end
in the past is an error on its field, nothing paused; "Resume"; and pause after failures on the
change form."""

from __future__ import annotations

import re

import pytest
from django_celery_beat.models import PeriodicTask

from scheduler.models import AuditEntry, ScheduleOptions
from scheduler.schedules import pause_of
from scheduler.services import schedule_get, schedule_pause
from tests.scheduler.admin.helpers import (
    CHANGELIST_URL,
    change_data,
    change_url,
    form_errors,
    make_schedule,
    page_messages,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("echo_entry")]


def pause_step(client, pks, **form):
    return client.post(
        CHANGELIST_URL,
        {"action": "pause_tasks", "_selected_action": pks, "post": "yes", **form},
        follow=True,
    )


def test_the_pause_action_asks_why_and_until_when_first(admin_client):
    tasks = [make_schedule(name=f"task {n}") for n in range(2)]

    response = admin_client.post(
        CHANGELIST_URL, {"action": "pause_tasks", "_selected_action": [t.pk for t in tasks]}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<li>task 0</li>" in page
    assert "<li>task 1</li>" in page
    assert 'name="note"' in page
    assert 'name="until"' in page
    assert PeriodicTask.objects.filter(enabled=True).count() == 2


def test_it_pauses_with_a_note_and_an_end_shown_in_the_list_and_the_change_page(
    admin_client, admin_user
):
    paused, other = make_schedule(name="nightly", tz="Europe/Paris"), make_schedule(name="other")

    response = pause_step(admin_client, [paused.pk], note="deploy freeze", until="2099-06-01 09:00")

    assert "1 schedule paused." in page_messages(response)
    row = schedule_get("nightly")
    pause = pause_of(row)
    assert pause is not None
    assert (pause.by, pause.note) == ("admin", "deploy freeze")
    assert pause.until is not None
    assert pause.until.isoformat() == "2099-06-01T09:00:00+00:00"  # the admin's zone: UTC
    assert schedule_get("other").enabled
    entry = AuditEntry.objects.get(action="paused")
    assert (entry.actor, entry.source) == (admin_user, "admin")
    listing = admin_client.get(CHANGELIST_URL).content.decode()
    # In the schedule's own zone.
    assert "paused by admin until 2099-06-01 11:00 CEST: deploy freeze" in listing
    change = admin_client.get(change_url(row)).content.decode()
    field = re.search(r'<div class="readonly">(paused by admin.*?)</div>', change, re.S)
    assert field is not None
    assert "until 2099-06-01 11:00 CEST: deploy freeze" in field.group(1)
    assert other.pk != paused.pk


@pytest.mark.parametrize(
    ("until", "says"),
    [
        ("2020-01-01 09:00", "is in the past: a pause ends in the future"),
        ("next week", "is neither a duration"),
    ],
)
def test_it_shows_an_end_not_ahead_on_its_field_and_pauses_nothing(admin_client, until, says):
    task = make_schedule(name="nightly")

    response = pause_step(admin_client, [task.pk], note="why", until=until)

    errors = response.context["form"].errors
    assert says in errors["until"][0]
    assert 'name="until"' in response.content.decode()
    assert schedule_get("nightly").enabled
    assert not AuditEntry.objects.exclude(action="created").exists()


def test_it_resumes_a_selection(admin_client):
    paused, running = make_schedule(name="paused"), make_schedule(name="running")
    schedule_pause(name="paused", note="x", until="1d")

    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "resume_tasks", "_selected_action": [paused.pk, running.pk]},
        follow=True,
    )

    assert "1 task resumed (1 not paused)." in page_messages(response)
    assert PeriodicTask.objects.filter(enabled=True).count() == 2
    assert ScheduleOptions.objects.get(pk=paused.pk).paused_until is None


def test_the_change_form_sets_pause_after_failures_through_the_service(admin_client):
    task = make_schedule(name="nightly")

    response = admin_client.post(change_url(task), change_data(task, pause_after_failures="3"))
    refused = admin_client.post(change_url(task), change_data(task, pause_after_failures="0"))

    assert response.status_code == 302
    assert ScheduleOptions.objects.get(pk=task.pk).pause_after_failures == 3
    assert AuditEntry.objects.get(action="updated").changes == {"pause_after_failures": [None, 3]}
    # The services' own message, as every interface gives it.
    assert "0 would never" in form_errors(refused)["pause_after_failures"][0]
    page = admin_client.get(change_url(task)).content.decode()
    assert re.search(r'name="pause_after_failures"[^>]*value="3"', page)


def test_enabling_a_paused_schedule_on_its_change_form_ends_the_pause(admin_client):
    task = make_schedule(name="nightly")
    schedule_pause(name="nightly", note="x", until="1d")
    row = schedule_get("nightly")

    enabled = admin_client.post(change_url(row), change_data(row, enabled="on"))
    assert enabled.status_code == 302, form_errors(enabled)
    assert schedule_get("nightly").enabled
    admin_client.post(change_url(row), change_data(schedule_get("nightly"), enabled=None))

    assert pause_of(schedule_get("nightly")) is None  # disabled by hand: no old note shown
    assert ScheduleOptions.objects.get(pk=task.pk).paused_until is None
