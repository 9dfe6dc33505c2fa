"""`/api/schedules/`: a schedule's policies (overlap, catch-up and its window, jitter, start and
end, max runs, pause after failures) created, changed by PATCH and read back; a bad one is a
400 naming the field with the service's message, and nothing is written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from scheduler.models import AuditEntry, ScheduleOptions
from scheduler.services import ScheduleError, schedule_create
from tests.clients import response_json
from tests.factories import make_schedule
from tests.scheduler.api.helpers import schedule_url

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASE = {"name": "nap", "task": "scheduler.ping", "schedule": "every hour"}


@time_machine.travel(NOW, tick=False)
def test_it_creates_with_every_policy_and_answers_them(api_admin):
    body = {
        **BASE,
        "overlap": "terminate_other",
        "catchup": "all",
        "catchup_window": "30m",
        "jitter": 20,
        "start_time": "2026-04-01T00:00:00Z",
        "end_time": "2026-05-01T00:00:00+00:00",
        "max_runs": 4,
        "pause_after_failures": 2,
    }

    response = api_admin.post("/api/schedules/", body, format="json")

    assert response.status_code == 201, response.content
    data = response_json(response)
    assert data["overlap"] == "terminate_other"
    assert (data["catchup"], data["catchup_window"], data["misfire"]) == ("all", 1800, "run_once")
    assert data["catchup_summary"] == "all, within 30m"
    assert data["jitter"] == 20
    assert data["start_time"].startswith("2026-04-01T00:00:00")
    assert data["end_time"].startswith("2026-05-01T00:00:00")
    assert (data["max_runs"], data["remaining_runs"]) == (4, 4)
    assert data["runs_left"] == "4 of 4 runs left"
    assert data["pause_after_failures"] == 2
    again = response_json(api_admin.get(data["url"]))
    assert again == data


@time_machine.travel(NOW, tick=False)
def test_a_patch_changes_the_policies_it_gives_and_clears_with_null(api_admin):
    periodic_task = make_schedule(
        name="patched", catchup_window=600, max_runs=3, jitter=5, misfire="skip"
    )
    ScheduleOptions.objects.filter(periodic_task=periodic_task).update(remaining_runs=1)

    response = api_admin.patch(
        schedule_url(periodic_task),
        {"catchup": "latest", "catchup_window": None, "max_runs": 6},
        format="json",
    )

    assert response.status_code == 200, response.content
    data = response_json(response)
    assert (data["catchup"], data["catchup_window"], data["misfire"]) == (
        "latest",
        None,
        "run_once",
    )
    assert data["catchup_summary"] == "latest, however late"
    assert data["runs_left"] == "6 of 6 runs left"
    assert data["jitter"] == 5  # not given: as it was
    cleared = response_json(
        api_admin.patch(schedule_url(periodic_task), {"max_runs": None}, format="json")
    )
    assert (cleared["max_runs"], cleared["remaining_runs"], cleared["runs_left"]) == (
        None,
        None,
        None,
    )
    preset = response_json(
        api_admin.patch(schedule_url(periodic_task), {"misfire": "skip"}, format="json")
    )
    assert (preset["catchup"], preset["catchup_window"], preset["misfire"]) == (
        "none",
        None,
        "skip",
    )


def _service_errors(**fields: object) -> dict[str, list[str]]:
    try:
        schedule_create(**fields)  # type: ignore[arg-type]
    except ScheduleError as exc:
        return exc.errors
    raise AssertionError("the service accepted it")


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"catchup_window": -1}, "catchup_window"),
        ({"catchup_window": 2.5}, "catchup_window"),
        ({"catchup": "sometimes"}, "catchup"),
        ({"jitter": 3601}, "jitter"),
        ({"max_runs": 0}, "max_runs"),
        ({"pause_after_failures": "x"}, "pause_after_failures"),
        ({"start_time": "2026-06-02T00:00:00Z", "end_time": "2026-06-01T00:00:00Z"}, "end_time"),
        ({"start_time": "soon"}, "start_time"),
        ({"misfire": "skip", "catchup": "all"}, "misfire"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field_and_writes_nothing(api_admin, fields, field):
    expected = _service_errors(**BASE, **fields)
    periodic_task = make_schedule(name="kept", jitter=5)
    audited = AuditEntry.objects.count()

    created = api_admin.post("/api/schedules/", {**BASE, **fields}, format="json")
    patched = api_admin.patch(schedule_url(periodic_task), fields, format="json")

    for response in (created, patched):
        assert response.status_code == 400, response.content
        assert field in response_json(response)
    assert response_json(created) == expected
    assert not PeriodicTask.objects.filter(name="nap").exists()
    assert ScheduleOptions.objects.get(periodic_task=periodic_task).jitter == 5
    assert AuditEntry.objects.count() == audited
