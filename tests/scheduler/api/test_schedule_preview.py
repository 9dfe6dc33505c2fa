"""`POST /api/schedules/preview/`: a dry run of a schedule, read as saving it would, with its next
runs and DST warnings; bad input is a 400 naming the field, and nothing is saved."""

from __future__ import annotations

from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from tests.clients import api_client, response_json
from tests.factories import user_with

pytestmark = pytest.mark.django_db

URL = "/api/schedules/preview/"


def test_it_lists_the_next_runs_in_the_zone_and_in_utc_with_the_dst_warning(api_admin: Any) -> None:
    response = api_admin.post(
        URL,
        {
            "schedule": "30 2 * * *",
            "timezone": "America/New_York",
            "count": 3,
            "now": "2027-03-12T12:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response_json(response)
    assert (body["kind"], body["timezone"]) == ("crontab", "America/New_York")
    assert body["next_runs"] == [
        {"at": "2027-03-13T02:30:00-05:00", "utc": "2027-03-13T07:30:00+00:00"},
        {"at": "2027-03-14T03:30:00-04:00", "utc": "2027-03-14T07:30:00+00:00"},
        {"at": "2027-03-15T02:30:00-04:00", "utc": "2027-03-15T06:30:00+00:00"},
    ]
    assert len(body["warnings"]) == 1
    assert "02:30 does not exist that day" in body["warnings"][0]
    assert not PeriodicTask.objects.exists()


def test_a_phrase_gets_its_description_and_ten_runs_by_default(api_admin: Any) -> None:
    body = response_json(api_admin.post(URL, {"schedule": "every weekday at 9:30"}, format="json"))
    assert body["description"].startswith("At 09:30")
    assert len(body["next_runs"]) == 10
    assert body["warnings"] == []


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"schedule": "0 0 31 4 *"}, "schedule", "can never run: April has no day 31"),
        ({"schedule": "sometimes"}, "schedule", "sometimes"),
        ({"schedule": "every day", "timezone": "Mars/Base"}, "timezone", "unknown time zone"),
        ({"schedule": "every day", "count": 0}, "count", "greater than or equal to 1"),
        ({"schedule": "every day", "count": "ten"}, "count", "valid integer"),
        ({"schedule": "every day", "colour": "red"}, "colour", "is not a field"),
        ({}, "schedule", "required"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    api_admin: Any, payload: dict[str, Any], field: str, message: str
) -> None:
    response = api_admin.post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    errors = response_json(response)
    assert message in " ".join(errors[field])


def test_malformed_json_is_a_400(api_admin: Any) -> None:
    response = api_admin.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_it_needs_a_staff_user() -> None:
    assert api_client().post(URL, {"schedule": "every day"}, format="json").status_code in (
        401,
        403,
    )
    plain = api_client(user_with(staff=False))
    assert plain.post(URL, {"schedule": "every day"}, format="json").status_code == 403


# --- The policies, previewed as the admin's form previews them ----------------------------------

HOURLY = {"schedule": "every hour", "now": "2025-01-15T08:00:00Z"}


def preview(api_admin: Any, **policies: Any) -> dict[str, Any]:
    response = api_admin.post(URL, {**HOURLY, **policies}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response_json(response)
    return body


def utc_runs(body: dict[str, Any]) -> list[str]:
    return [run["utc"] for run in body["next_runs"]]


def test_without_policies_it_says_the_defaults_and_keeps_its_keys(api_admin: Any) -> None:
    body = preview(api_admin, count=2)

    assert set(body) == {
        "kind",
        "description",
        "timezone",
        "next_runs",
        "warnings",
        "effects",
        "cutoff",
        "notes",
    }
    assert utc_runs(body) == ["2025-01-15T09:00:00+00:00", "2025-01-15T10:00:00+00:00"]
    assert body["effects"] == [
        "overlap: the task's default (choose a task to see it)",
        "catch-up latest: after beat was down, the latest missed run is made however late, once",
    ]
    assert (body["cutoff"], body["notes"]) == ("", [])


def test_max_runs_lists_that_many_runs_and_says_the_list_stops(api_admin: Any) -> None:
    body = preview(api_admin, max_runs=3)

    assert utc_runs(body) == [
        "2025-01-15T09:00:00+00:00",
        "2025-01-15T10:00:00+00:00",
        "2025-01-15T11:00:00+00:00",
    ]
    assert body["cutoff"] == (
        "The list stops after 3 runs (max runs): beat disables the schedule then."
    )
    assert "ends after 3 runs (max runs)" in body["effects"]
    assert not PeriodicTask.objects.exists()


def test_an_end_time_cuts_the_list_and_a_start_time_begins_it(api_admin: Any) -> None:
    body = preview(api_admin, start_time="2025-01-15T09:30", end_time="2025-01-15T12:30")

    # Times without an offset are in the schedule's zone (UTC here); an interval counts from
    # its start time, as beat counts it.
    assert utc_runs(body) == [
        "2025-01-15T09:30:00+00:00",
        "2025-01-15T10:30:00+00:00",
        "2025-01-15T11:30:00+00:00",
    ]
    assert body["cutoff"] == (
        "The list stops at the end time, Wed 2025-01-15 12:30 UTC (UTC+00:00): no run after it."
    )
    assert body["effects"][-2:] == [
        "starts on Wed 2025-01-15 09:30 UTC (UTC+00:00) (start time)",
        "ends on Wed 2025-01-15 12:30 UTC (UTC+00:00) (end time)",
    ]
    assert body["notes"] == ["The schedule starts at Wed 2025-01-15 09:30 UTC (UTC+00:00)."]


def test_jitter_shifts_the_runs_within_its_bound_and_is_put_in_words(api_admin: Any) -> None:
    plain = preview(api_admin, count=5)
    jittered = preview(api_admin, count=5, jitter="5m")

    pairs = list(zip(utc_runs(plain), utc_runs(jittered), strict=True))
    assert all(due <= sent < due[:14] + "05:01+00:00" for due, sent in pairs)
    assert any(due != sent for due, sent in pairs)
    assert (
        "jitter up to 5 minutes: each run goes out up to 5 minutes after its due time (the same "
        "delay whichever beat sends it)"
    ) in jittered["effects"]
    assert preview(api_admin, count=5, jitter=300) == jittered  # the same runs for the same run


def test_the_catch_up_and_overlap_policies_are_put_in_words(api_admin: Any) -> None:
    body = preview(api_admin, catchup="all", catchup_window="1h", overlap="buffer_all")
    skip = preview(api_admin, misfire="skip", task="scheduler.backup_database")

    assert body["effects"][:2] == [
        "overlap buffer_all: runs that start while the previous one runs wait for it, then run "
        "one by one in order",
        "catch-up all within 1 hour: after beat was down, every missed run within the last "
        "hour is made, in order",
    ]
    assert skip["effects"][:2] == [
        "overlap skip (the task's default): a run due while the previous one still runs is skipped",
        "catch-up none: runs missed while beat was down are not made; the schedule waits for "
        "its next due time",
    ]


def test_a_one_off_lists_one_run_and_says_why(api_admin: Any) -> None:
    body = preview(api_admin, one_off=True)

    assert utc_runs(body) == ["2025-01-15T09:00:00+00:00"]
    assert "one-off: runs once, then is disabled" in body["effects"]
    assert "it is a one-off" in body["cutoff"]


@pytest.mark.parametrize(
    ("policies", "field", "message"),
    [
        ({"catchup_window": -1}, "catchup_window", "-1 is less than 1"),
        ({"catchup_window": "later"}, "catchup_window", "'later' is not a duration"),
        ({"catchup": "sometimes"}, "catchup", "'sometimes' is not one of none, latest, all"),
        ({"overlap": "queue"}, "overlap", "'queue' is not one of allow, skip"),
        ({"jitter": "2h"}, "jitter", "7200 seconds is more than the limit, 3600 seconds"),
        ({"max_runs": 0}, "max_runs", "0 would never let it run"),
        ({"max_runs": "many"}, "max_runs", "'many' is not a whole number"),
        (
            {"start_time": "2025-03-01T00:00Z", "end_time": "2025-02-01T00:00Z"},
            "end_time",
            "2025-02-01T00:00:00+00:00 is not after start_time",
        ),
        ({"end_time": "2025-01-01T00:00Z"}, "end_time", "is in the past"),
        ({"start_time": "soon"}, "start_time", "'soon' is not an ISO 8601 date or time"),
        ({"task": "nope"}, "task", "unknown task 'nope'"),
        ({"one_off": "maybe"}, "one_off", "valid boolean"),
    ],
)
def test_a_bad_policy_is_a_400_naming_the_field_with_the_services_message(
    api_admin: Any, policies: dict[str, Any], field: str, message: str
) -> None:
    response = api_admin.post(URL, {**HOURLY, **policies}, format="json")

    assert response.status_code == 400, response.content
    assert message in " ".join(response_json(response)[field])
    assert not PeriodicTask.objects.exists()


def test_every_bad_field_is_named_at_once(api_admin: Any) -> None:
    response = api_admin.post(
        URL,
        {"schedule": "sometimes", "catchup_window": -1, "max_runs": 0, "task": "nope"},
        format="json",
    )

    assert response.status_code == 400
    assert set(response_json(response)) == {"schedule", "catchup_window", "max_runs", "task"}
