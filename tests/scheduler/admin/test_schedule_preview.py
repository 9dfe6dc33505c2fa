"""The periodic task form's live preview (`preview/` and `<id>/preview/` in the admin): the
form's unsaved values give the next ten runs in the schedule's zone and in UTC, the DST
warnings, the policies in words and where the list stops; a bad value is a 400 with the form's
own message for its field; staff without the add or change permission get a 403; nothing is
ever saved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule

from scheduler.models import ScheduleOptions
from tests.forms import periodic_task_form
from tests.scheduler.admin.helpers import (
    ADD_URL,
    change_data,
    change_url,
    form_errors,
    make_schedule,
    nothing_saved,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("echo_entry")]

PREVIEW_URL = reverse("admin:django_celery_beat_periodictask_preview")
JUNE = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def preview_url(task: Any) -> str:
    return reverse("admin:django_celery_beat_periodictask_preview_change", args=[task.pk])


def preview(client: Client, url: str = PREVIEW_URL, **fields: Any) -> tuple[int, dict[str, Any]]:
    response = client.post(url, periodic_task_form(**fields) if url == PREVIEW_URL else fields)
    assert response["Content-Type"] == "application/json", response.content
    return response.status_code, response.json()


def no_schedule_rows() -> None:
    nothing_saved()
    assert not IntervalSchedule.objects.exists()
    assert not CrontabSchedule.objects.exists()
    assert not ClockedSchedule.objects.exists()


@time_machine.travel(JUNE, tick=False)
def test_it_lists_ten_runs_of_a_phrase_in_its_zone_and_in_utc_and_saves_nothing(admin_client):
    status, body = preview(admin_client, schedule="every day at 9am", timezone="Europe/London")

    assert status == 200, body
    assert (body["timezone"], body["description"]) == ("Europe/London", "At 09:00")
    assert len(body["runs"]) == 10
    assert body["runs"][0] == {
        "at": "2025-06-03T09:00:00+01:00",
        "utc": "2025-06-03T08:00:00+00:00",
        "text": "Tue 2025-06-03 09:00 BST (UTC+01:00)",
        "utc_text": "Tue 2025-06-03 08:00 UTC",
    }
    assert body["runs"][-1]["at"] == "2025-06-12T09:00:00+01:00"
    assert (body["warnings"], body["cutoff"], body["notes"]) == ([], "", [])
    assert body["effects"] == [
        "overlap allow (the task's default): a run starts even while the previous one still runs",
        "catch-up latest: after beat was down, the latest missed run is made however late, once",
    ]
    no_schedule_rows()


# Before the session of `admin_client` was made: travelling past its expiry would sign it out.
@time_machine.travel(datetime(2025, 3, 7, 12, 0, tzinfo=UTC), tick=False)
def test_a_cron_line_across_the_spring_change_gets_the_dst_warning(admin_client):
    status, body = preview(admin_client, schedule="30 2 * * *", timezone="America/New_York")

    assert status == 200, body
    assert [run["at"] for run in body["runs"][:3]] == [
        "2025-03-08T02:30:00-05:00",
        "2025-03-09T03:30:00-04:00",
        "2025-03-10T02:30:00-04:00",
    ]
    assert len(body["warnings"]) == 1
    assert (
        "02:30 does not exist that day: the run happens at 03:30 EDT instead"
        in (body["warnings"][0])
    )


@time_machine.travel(JUNE, tick=False)
def test_an_end_time_cuts_the_list_and_says_so(admin_client):
    status, body = preview(
        admin_client,
        schedule="every day at 9am",
        timezone="Europe/London",
        expires_0="2025-06-05",
        expires_1="12:00:00",
    )

    assert status == 200, body
    assert [run["utc"] for run in body["runs"]] == [
        "2025-06-03T08:00:00+00:00",
        "2025-06-04T08:00:00+00:00",
        "2025-06-05T08:00:00+00:00",
    ]
    end = "Thu 2025-06-05 13:00 BST (UTC+01:00)"
    assert body["cutoff"] == f"The list stops at the end time, {end}: no run after it."
    assert f"ends on {end} (end time)" in body["effects"]


@time_machine.travel(JUNE, tick=False)
def test_a_one_off_before_its_end_time_is_not_cut(admin_client):
    status, body = preview(
        admin_client, schedule="tomorrow at 9am", expires_0="2025-06-10", expires_1="00:00:00"
    )

    assert status == 200, body
    assert len(body["runs"]) == 1
    assert body["cutoff"] == ""


@time_machine.travel(JUNE, tick=False)
def test_the_policies_posted_are_put_in_words_and_max_runs_cuts_the_list(admin_client):
    status, body = preview(
        admin_client,
        schedule="every hour",
        timezone="UTC",
        overlap="buffer_one",
        catchup="latest",
        catchup_window="3600",
        jitter="30",
        max_runs="3",
    )

    assert status == 200, body
    assert [run["utc_text"] for run in body["runs"]] == [
        "Mon 2025-06-02 13:00 UTC",
        "Mon 2025-06-02 14:00 UTC",
        "Mon 2025-06-02 15:00 UTC",
    ]
    assert (
        body["cutoff"] == "The list stops after 3 runs (max runs): beat disables the schedule then."
    )
    assert body["effects"] == [
        "overlap buffer_one: a run that starts while the previous one runs waits for it; "
        "further ones are dropped",
        "catch-up latest within 1 hour: after beat was down, the latest missed run within the "
        "last hour is made",
        "jitter up to 30 s: each run goes out up to 30 s after its due time (the same delay "
        "whichever beat sends it)",
        "ends after 3 runs (max runs)",
    ]


@time_machine.travel(JUNE, tick=False)
def test_the_catch_up_typed_is_shown_in_words(admin_client):
    status, body = preview(admin_client, schedule="every hour", catchup="none")

    assert status == 200, body
    assert body["effects"][1] == (
        "catch-up none: runs missed while beat was down are not made; the schedule waits for "
        "its next due time"
    )


@time_machine.travel(JUNE, tick=False)
def test_a_disabled_task_lists_its_runs_under_a_note(admin_client):
    status, body = preview(
        admin_client, schedule="every day at 7am", timezone="UTC", clocked="", enabled=None
    )

    assert status == 200, body
    assert len(body["runs"]) == 10
    assert body["notes"] == ["The task is disabled: none of these runs happen until it is enabled."]


@time_machine.travel(JUNE, tick=False)
def test_a_one_off_on_a_stock_interval_stops_after_one_run(admin_client):
    every_hour = IntervalSchedule.objects.create(every=1, period="hours")

    status, body = preview(admin_client, schedule="", interval=every_hour.pk, one_off="on")

    assert status == 200, body
    assert [run["utc"] for run in body["runs"]] == ["2025-06-02T13:00:00+00:00"]
    assert body["cutoff"] == (
        "The list stops after 1 run (it is a one-off): beat disables the schedule then."
    )
    assert "one-off: runs once, then is disabled" in body["effects"]


@time_machine.travel(JUNE, tick=False)
def test_a_start_time_ahead_starts_the_list(admin_client):
    status, body = preview(
        admin_client,
        schedule="every day at 9am",
        timezone="UTC",
        start_time_0="2025-07-01",
        start_time_1="00:00:00",
    )

    assert status == 200, body
    assert body["runs"][0]["utc"] == "2025-07-01T09:00:00+00:00"
    assert "starts on Tue 2025-07-01 00:00 UTC (UTC+00:00) (start time)" in body["effects"]


def test_it_needs_a_schedule_before_it_previews_one(admin_client):
    status, body = preview(admin_client, schedule="")

    assert status == 200, body
    assert body["runs"] == []
    assert body["notes"] == ["Write a schedule (or choose a stock one) to see its next runs here."]


@time_machine.travel(JUNE, tick=False)
def test_missing_name_task_and_parameters_do_not_stop_the_preview(admin_client):
    status, body = preview(admin_client, name="", task="", kwargs="{not json")

    assert status == 200, body
    assert len(body["runs"]) == 10
    assert body["effects"][0] == "overlap: the task's default (choose a task to see it)"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"schedule": "0 0 31 4 *"}, "schedule"),
        ({"schedule": "sometimes"}, "schedule"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"start_time_0": "2025-13-45", "start_time_1": "09:00"}, "start_time"),
        ({"overlap": "sometimes"}, "overlap"),
    ],
)
def test_a_bad_value_gets_the_forms_own_message_for_its_field(admin_client, fields, field):
    status, body = preview(admin_client, **fields)
    saving = form_errors(admin_client.post(ADD_URL, periodic_task_form(**fields)))

    assert status == 400, body
    assert body["errors"] == {field: saving[field]}
    assert body["labels"][field]
    no_schedule_rows()


def test_the_never_running_cron_line_says_why(admin_client):
    status, body = preview(admin_client, schedule="0 0 31 4 *")

    assert status == 400
    assert "can never run: April has no day 31" in body["errors"]["schedule"][0]
    assert body["labels"] == {"schedule": "Schedule"}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        # The services' own messages, as saving gives them.
        ({"max_runs": "0"}, "max_runs", "0 would never let it run"),
        ({"jitter": "-1"}, "jitter", "-1 is less than 0"),
        ({"catchup_window": "-1"}, "catchup_window", "-1 is less than 1"),
        ({"catchup": "sometimes"}, "catchup", "not one of the available choices"),
    ],
)
def test_bad_schedule_options_posted_are_refused_by_name(admin_client, fields, field, message):
    status, body = preview(admin_client, **fields)

    assert status == 400, body
    assert list(body["errors"]) == [field]
    assert message in body["errors"][field][0]


@time_machine.travel(JUNE, tick=False)
def test_the_change_preview_reads_the_edited_values_and_changes_nothing(admin_client):
    task = make_schedule(schedule="every day at 2am", tz="UTC")
    crontab_id = task.crontab_id
    crontabs = CrontabSchedule.objects.count()

    status, body = preview(
        admin_client, preview_url(task), **change_data(task, schedule="every 15 minutes")
    )

    assert status == 200, body
    assert body["runs"][0]["utc"] == "2025-06-02T12:15:00+00:00"
    task.refresh_from_db()
    assert (task.crontab_id, task.interval_id) == (crontab_id, None)
    assert ScheduleOptions.objects.get(periodic_task=task).phrase == "every day at 2am"
    assert CrontabSchedule.objects.count() == crontabs
    assert not IntervalSchedule.objects.exists()


@time_machine.travel(JUNE, tick=False)
def test_the_change_preview_of_the_unchanged_form_is_the_stored_schedule(admin_client):
    task = make_schedule(schedule="every day at 2am", tz="Europe/Paris")

    status, body = preview(admin_client, preview_url(task), **change_data(task))

    assert status == 200, body
    assert body["description"] == "At 02:00"
    assert body["runs"][0]["at"] == "2025-06-03T02:00:00+02:00"


def test_it_shows_the_live_preview_box_on_the_add_and_change_pages(admin_client):
    task = make_schedule()

    for url, preview_at in ((ADD_URL, PREVIEW_URL), (change_url(task), preview_url(task))):
        content = admin_client.get(url).content.decode()
        assert 'id="scheduler-preview"' in content
        assert f'id="scheduler-preview-script" data-url="{preview_at}"' in content


def test_staff_who_may_only_view_get_no_live_preview_and_a_403(viewer_client):
    task = make_schedule()

    content = viewer_client.get(change_url(task)).content.decode()
    add = viewer_client.post(PREVIEW_URL, periodic_task_form())
    change = viewer_client.post(preview_url(task), change_data(task))

    assert 'id="scheduler-preview"' in content  # the stored schedule's, rendered on the server
    assert "scheduler-preview-script" not in content
    assert (add.status_code, add.json()) == (403, {"detail": "You may not add periodic tasks."})
    assert (change.status_code, change.json()) == (
        403,
        {"detail": "You may not change periodic tasks."},
    )


def test_staff_who_may_add_may_preview_the_add_form(viewer):
    viewer.user_permissions.add(
        Permission.objects.get(
            codename="add_periodictask", content_type__app_label="django_celery_beat"
        )
    )
    client = Client()
    client.force_login(viewer)

    assert client.post(PREVIEW_URL, periodic_task_form()).status_code == 200


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    task = make_schedule()

    for url in (PREVIEW_URL, preview_url(task)):
        response = client.post(url, periodic_task_form())
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_an_unknown_task_is_a_404_and_a_get_a_405(admin_client):
    missing = reverse("admin:django_celery_beat_periodictask_preview_change", args=[999])

    response = admin_client.post(missing, periodic_task_form())

    assert response.status_code == 404
    assert "999" in response.json()["detail"]
    assert admin_client.get(PREVIEW_URL).status_code == 405
