"""The REST API's pauses: `POST /api/schedules/{id}/pause/` with why and until when, shown back
in the schedule's JSON (and its list); an end in the past answered 400 naming `until`, nothing
paused; resume; and `pause-on-failure`."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from scheduler.models import AuditEntry
from scheduler.services import schedule_get
from tests.clients import api_client, response_json
from tests.factories import make_schedule, user_with
from tests.scheduler.api.helpers import schedule_url

pytestmark = pytest.mark.django_db


def test_it_pauses_with_a_note_and_an_end_shown_in_the_schedules_json():
    user = user_with(superuser=True)
    periodic_task = make_schedule(name="nightly")
    client = api_client(user)
    before = timezone.now()

    response = client.post(
        schedule_url(periodic_task, "pause"),
        {"note": "deploy freeze", "until": "2h"},
        format="json",
    )

    assert response.status_code == 200, response.content
    data = response_json(response)
    assert data["enabled"] is False
    pause = data["pause"]
    assert (pause["paused_by"], pause["note"]) == (user.get_username(), "deploy freeze")
    until = datetime.fromisoformat(pause["until"])
    assert before + timedelta(hours=2) <= until <= timezone.now() + timedelta(hours=2)
    [listed] = response_json(client.get("/api/schedules/"))["results"]
    assert listed["pause"] == pause
    entry = AuditEntry.objects.get(action="paused")
    assert (entry.source, entry.actor) == ("api", user)
    assert entry.changes["pause_note"] == ["", "deploy freeze"]


def test_it_reads_an_end_without_an_offset_in_the_servers_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    periodic_task = make_schedule(name="nightly")

    response = api_client(user_with(superuser=True)).post(
        schedule_url(periodic_task, "pause"), {"until": "2099-06-01T09:00"}, format="json"
    )

    assert response_json(response)["pause"]["until"].startswith("2099-06-01T07:00:00")


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"until": "2020-01-01T09:00:00Z"}, "until", "is in the past: a pause ends in the future"),
        ({"until": "whenever"}, "until", "is neither a duration"),
        ({"note": "x" * 2001}, "note", "is longer than 2000 characters"),
        ({"reason": "typo"}, "reason", "is not a field of this request"),
        ({"note": ["a"]}, "note", "Not a valid string."),
    ],
)
def test_it_refuses_bad_input_naming_the_field_and_pauses_nothing(body, field, says):
    periodic_task = make_schedule(name="nightly")

    response = api_client(user_with(superuser=True)).post(
        schedule_url(periodic_task, "pause"), body, format="json"
    )

    assert response.status_code == 400
    assert says in response_json(response)[field][0]
    assert schedule_get("nightly").enabled
    assert not AuditEntry.objects.exclude(action="created").exists()


def test_it_resumes_forgetting_the_pause():
    periodic_task = make_schedule(name="nightly")
    client = api_client(user_with(superuser=True))
    client.post(schedule_url(periodic_task, "pause"), {"note": "x"}, format="json")

    response = client.post(schedule_url(periodic_task, "resume"))

    assert response.status_code == 200
    data = response_json(response)
    assert (data["enabled"], data["pause"]) == (True, None)
    assert data["next_run"] is not None


def test_it_sets_pause_on_failure_and_refuses_a_bad_count():
    periodic_task = make_schedule(name="nightly")
    client = api_client(user_with(superuser=True))

    response = client.post(
        schedule_url(periodic_task, "pause-on-failure"), {"after": 3}, format="json"
    )
    refused = client.post(
        schedule_url(periodic_task, "pause-on-failure"), {"after": 0}, format="json"
    )
    cleared = client.post(
        schedule_url(periodic_task, "pause-on-failure"), {"after": None}, format="json"
    )

    assert response.status_code == 200
    assert response_json(response)["pause_after_failures"] == 3
    assert response_json(response)["failure_streak"] == 0
    assert refused.status_code == 400
    assert "0 is not a number of failed runs" in response_json(refused)["pause_after_failures"][0]
    assert response_json(cleared)["pause_after_failures"] is None
