"""The REST API's schedules (`/api/schedules/`): create, list, show, change, delete, run now,
enable and disable, each through the service with its audit entry and the messages of the admin
and the command line; periodic tasks outside the catalog and the task's default overlap policy.
"""

from __future__ import annotations

from typing import Any

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduler.catalog import load_catalog
from scheduler.models import AuditEntry
from scheduler.services import ScheduleError, schedule_create
from tests.clients import api_client, response_json
from tests.factories import make_schedule, user_with
from tests.queues import take_queued
from tests.scheduler.api.helpers import schedule_url

pytestmark = pytest.mark.django_db


# --- Schedules -----------------------------------------------------------------------------------

SCHEDULE_FIELDS = {
    "id",
    "name",
    "task",
    "schedule",
    "schedule_description",
    "timezone",
    "params",
    "queue",
    "enabled",
    "description",
    "overlap",
    "overlap_effective",
    "in_catalog",
    "misfire",
    "catchup",
    "catchup_window",
    "catchup_summary",
    "jitter",
    "start_time",
    "end_time",
    "max_runs",
    "remaining_runs",
    "runs_left",
    "pause_after_failures",
    "declared_in",
    "drift",
    "pause",
    "failure_streak",
    "next_run",
    "last_run_at",
    "total_run_count",
    "url",
}


def test_it_creates_a_schedule_through_the_service():
    user = user_with(superuser=True)
    body = {
        "name": "morning nap",
        "task": "scheduler.sleep",
        "schedule": "every monday at 8am",
        "params": {"seconds": 2},
        "timezone": "Europe/Paris",
        "description": "a short one",
        "overlap": "skip",
        "misfire": "skip",
        "enabled": False,
    }

    response = api_client(user).post("/api/schedules/", body, format="json")

    assert response.status_code == 201, response.content
    data = response_json(response)
    assert set(data) == SCHEDULE_FIELDS
    periodic_task = PeriodicTask.objects.get(name="morning nap")
    assert data["id"] == periodic_task.pk
    assert response["Location"] == data["url"] == f"http://testserver/api/schedules/{data['id']}/"
    assert data["schedule"] == "every monday at 8am"
    assert data["timezone"] == "Europe/Paris"
    assert data["params"] == {"seconds": 2}
    assert (data["overlap"], data["misfire"], data["enabled"]) == ("skip", "skip", False)
    assert data["next_run"] is None  # disabled
    assert data["queue"] == load_catalog().get("scheduler.sleep").queue
    entry = AuditEntry.objects.get(periodic_task_name="morning nap", action="created")
    assert (entry.source, entry.actor) == ("api", user)


def test_it_uses_the_create_defaults_of_the_service(api_admin):
    response = api_admin.post(
        "/api/schedules/",
        {"name": "ping", "task": "scheduler.ping", "schedule": "*/5 * * * *"},
        format="json",
    )

    data = response_json(response)
    assert response.status_code == 201
    assert data["enabled"] is True
    assert data["timezone"] == "UTC"
    assert data["params"] == {}
    assert data["misfire"] == "run_once"
    assert data["next_run"] is not None
    assert data["schedule"] == "*/5 * * * *"
    assert "5 minutes" in data["schedule_description"]


def _service_errors(**fields: Any) -> dict[str, list[str]]:
    try:
        schedule_create(**fields)
    except ScheduleError as exc:
        return exc.errors
    raise AssertionError("the service accepted it")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "a", "task": "scheduler.ping", "schedule": "every blue moon"},
        {"name": "a", "task": "os.system", "schedule": "daily"},
        {"name": "a", "task": "scheduler.sleep", "schedule": "daily", "params": {"seconds": -1}},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "timezone": "Mars/Olympus"},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "overlap": "sometimes"},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "misfire": "never"},
        {"name": "a", "task": "scheduler.ping", "schedule": "daily", "queue": "nowhere"},
        {"name": "", "task": "scheduler.ping", "schedule": "daily"},
        {"name": "b", "task": "nope", "schedule": "nope", "params": [1]},
    ],
)
def test_it_answers_schedule_errors_with_the_messages_of_the_admin_and_cli(api_admin, body):
    fields = {("tz" if key == "timezone" else key): value for key, value in body.items()}
    expected = _service_errors(**fields)

    response = api_admin.post("/api/schedules/", body, format="json")

    assert response.status_code == 400
    assert response_json(response) == expected
    assert not PeriodicTask.objects.exists()


def test_it_refuses_a_second_schedule_of_the_same_name(api_admin):
    make_schedule(name="taken")

    response = api_admin.post(
        "/api/schedules/",
        {"name": "taken", "task": "scheduler.ping", "schedule": "daily"},
        format="json",
    )

    assert response.status_code == 400
    assert response_json(response) == {"name": ["a periodic task named 'taken' already exists"]}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"task": "scheduler.ping", "schedule": "daily"}, "name", "required"),
        ({"name": ["a"], "task": "scheduler.ping", "schedule": "daily"}, "name", "valid string"),
        ({"name": "a", "task": "scheduler.ping", "schedule": {}}, "schedule", "valid string"),
        (
            {"name": "a", "task": "scheduler.ping", "schedule": "daily", "enabled": "maybe"},
            "enabled",
            "valid boolean",
        ),
        (
            {"name": "a", "task": "scheduler.ping", "schedule": "daily", "every": "day"},
            "every",
            "not a field",
        ),
    ],
)
def test_it_answers_400_for_schedule_fields_of_the_wrong_type(api_admin, body, field, says):
    response = api_admin.post("/api/schedules/", body, format="json")

    assert response.status_code == 400
    assert says in " ".join(response_json(response)[field])


def test_it_lists_schedules_in_pages_and_by_state(api_admin):
    make_schedule(name="b on")
    make_schedule(name="a off", enabled=False)
    make_schedule(name="c on")

    everything = response_json(api_admin.get("/api/schedules/"))
    enabled = response_json(api_admin.get("/api/schedules/?enabled=true"))
    disabled = response_json(api_admin.get("/api/schedules/?enabled=false"))
    bad = api_admin.get("/api/schedules/?enabled=sometimes")

    assert [row["name"] for row in everything["results"]] == ["a off", "b on", "c on"]
    assert everything["count"] == 3
    assert set(everything["results"][0]) == SCHEDULE_FIELDS
    assert [row["name"] for row in enabled["results"]] == ["b on", "c on"]
    assert [row["name"] for row in disabled["results"]] == ["a off"]
    assert bad.status_code == 400
    assert "enabled" in response_json(bad)


def test_it_shows_one_schedule(api_admin):
    periodic_task = make_schedule(name="shown", schedule="every day at 2am", params={})

    data = response_json(api_admin.get(schedule_url(periodic_task)))

    assert data["name"] == "shown"
    assert data["schedule"] == "every day at 2am"
    assert data["next_run"] is not None
    assert data["total_run_count"] == 0
    assert data["last_run_at"] is None


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("put", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "run/"),
        ("post", "enable/"),
        ("post", "disable/"),
    ],
)
def test_it_answers_404_json_for_an_unknown_schedule(api_admin, method, suffix):
    for schedule_id in ("999999", "0", "123456789012345678"):
        response = getattr(api_admin, method)(
            f"/api/schedules/{schedule_id}/{suffix}", {}, format="json"
        )

        assert response.status_code == 404, (method, schedule_id, suffix)
        assert response_json(response) == {"detail": f"no schedule with id {schedule_id}"}


@pytest.mark.parametrize("schedule_id", ["abc", "-1", "1.5", "1" * 30, "%00"])
def test_it_answers_404_json_for_a_schedule_id_that_is_no_number(api_admin, schedule_id):
    response = api_admin.get(f"/api/schedules/{schedule_id}/")

    assert response.status_code == 404
    assert "no such API endpoint" in response_json(response)["detail"]


def test_it_changes_only_the_fields_a_patch_gives():
    user = user_with("django_celery_beat.change_periodictask")
    periodic_task = make_schedule(name="patched", task="scheduler.sleep", params={"seconds": 1})

    response = api_client(user).patch(
        schedule_url(periodic_task),
        {"schedule": "every 10 minutes", "description": "slower", "name": "renamed"},
        format="json",
    )

    assert response.status_code == 200, response.content
    data = response_json(response)
    assert (data["name"], data["schedule"], data["description"]) == (
        "renamed",
        "every 10 minutes",
        "slower",
    )
    assert data["params"] == {"seconds": 1}
    assert data["task"] == "scheduler.sleep"
    entry = AuditEntry.objects.get(periodic_task_name="renamed", action="updated")
    assert (entry.source, entry.actor) == ("api", user)
    assert set(entry.changes) >= {"schedule", "description", "name"}


def test_it_changes_nothing_when_a_patch_is_wrong(api_admin):
    periodic_task = make_schedule(name="kept", schedule="every 5 minutes")

    response = api_admin.patch(
        schedule_url(periodic_task),
        {"schedule": "whenever", "params": {"surprise": 1}},
        format="json",
    )

    assert response.status_code == 400
    assert set(response_json(response)) == {"schedule", "params"}
    assert (
        response_json(api_admin.get(schedule_url(periodic_task)))["schedule"] == "every 5 minutes"
    )
    assert not AuditEntry.objects.filter(action="updated").exists()


def test_it_needs_name_task_and_schedule_to_put(api_admin):
    periodic_task = make_schedule(name="put me", task="scheduler.ping")

    incomplete = api_admin.put(schedule_url(periodic_task), {"description": "x"}, format="json")
    complete = api_admin.put(
        schedule_url(periodic_task),
        {
            "name": "put me",
            "task": "scheduler.sleep",
            "schedule": "every hour",
            "params": {"seconds": 3},
        },
        format="json",
    )

    assert incomplete.status_code == 400
    assert set(response_json(incomplete)) == {"name", "task", "schedule"}
    assert complete.status_code == 200, complete.content
    data = response_json(complete)
    assert (data["task"], data["params"], data["schedule"]) == (
        "scheduler.sleep",
        {"seconds": 3},
        "every hour",
    )


def test_it_deletes_a_schedule():
    user = user_with("django_celery_beat.delete_periodictask")
    periodic_task = make_schedule(name="doomed")
    client = api_client(user)

    response = client.delete(schedule_url(periodic_task))

    assert response.status_code == 204
    assert response.content == b""
    assert not PeriodicTask.objects.filter(name="doomed").exists()
    entry = AuditEntry.objects.get(periodic_task_name="doomed", action="deleted")
    assert (entry.source, entry.actor) == ("api", user)
    assert client.get(schedule_url(periodic_task)).status_code == 404


def test_it_runs_a_schedule_now(api_admin, django_capture_on_commit_callbacks):
    periodic_task = make_schedule(name="right now", task="scheduler.ping")

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(schedule_url(periodic_task, "run"))

    assert response.status_code == 202
    task_id = response_json(response)["task_id"]
    assert response_json(response)["url"].endswith(f"/api/tasks/{task_id}/")
    entry = AuditEntry.objects.get(action="run_now", periodic_task_name="right now")
    assert entry.source == "api"
    assert entry.changes["task_id"] == [None, task_id]
    message = take_queued("default", task_id)
    assert message is not None
    assert message["headers"]["periodic_task_name"] == "right now"


def test_it_disables_and_enables_a_schedule(api_admin):
    periodic_task = make_schedule(name="switch")

    disabled = api_admin.post(schedule_url(periodic_task, "disable"))
    enabled = api_admin.post(schedule_url(periodic_task, "enable"))

    assert disabled.status_code == enabled.status_code == 200
    assert response_json(disabled)["enabled"] is False
    assert response_json(disabled)["next_run"] is None
    assert response_json(enabled)["enabled"] is True
    assert set(response_json(enabled)) == SCHEDULE_FIELDS
    actions = list(
        AuditEntry.objects.filter(periodic_task_name="switch", source="api")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["disabled", "enabled"]


def test_it_shows_a_schedule_made_in_the_stock_admin(api_admin):
    from django_celery_beat.models import CrontabSchedule

    crontab = CrontabSchedule.objects.create(minute="not a minute", hour="*")
    periodic_task = PeriodicTask.objects.create(
        name="hand made", task="scheduler.ping", crontab=crontab, kwargs="not json"
    )

    response = api_admin.get(schedule_url(periodic_task))

    assert response.status_code == 200
    data = response_json(response)
    assert data["params"] == "not json"
    assert data["next_run"] is None
    assert data["timezone"] == "UTC"


# --- Periodic tasks outside the catalog; the task's default overlap policy -----------------------


def test_it_treats_a_periodic_task_outside_the_catalog_as_every_interface_does(api_admin):
    interval = IntervalSchedule.objects.create(every=1, period="days")
    legacy = PeriodicTask.objects.create(
        name="legacy", task="billing.send_invoices", interval=interval, enabled=True
    )

    shown = api_admin.get(schedule_url(legacy))
    patched = api_admin.patch(schedule_url(legacy), {"description": "x"}, format="json")
    disabled = api_admin.post(schedule_url(legacy, "disable"))
    enabled = api_admin.post(schedule_url(legacy, "enable"))
    deleted = api_admin.delete(schedule_url(legacy))

    assert response_json(shown)["in_catalog"] is False
    assert patched.status_code == 400
    assert "not edited" in response_json(patched)["task"][0]
    assert (disabled.status_code, response_json(disabled)["enabled"]) == (200, False)
    assert enabled.status_code == 400
    assert (
        "which is outside the catalog: it can be disabled or deleted, not enabled"
        in (response_json(enabled)["task"][0])
    )
    assert deleted.status_code == 204


def test_it_shows_the_overlap_policy_as_saved_and_as_the_next_run_follows_it(api_admin):
    make_schedule(name="napper", task="scheduler.sleep", params={"seconds": 1})

    (row,) = response_json(api_admin.get("/api/schedules/"))["results"]

    assert row["in_catalog"] is True
    assert row["overlap"] == "default"
    assert row["overlap_effective"] == load_catalog().get("scheduler.sleep").overlap.value
