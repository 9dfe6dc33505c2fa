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
