"""`POST /api/schedules/<name>/backfill/`, `GET /api/backfills/<id>/` and `GET /api/backfills/`:
202 with the backfill, its progress, dry runs, 4xx JSON naming the field, and permissions."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from scheduler.models import AuditEntry, Backfill
from scheduler.services import backfill_publish
from tests.clients import api_client, response_json
from tests.factories import user_with

from .conftest import at, daily_at_nine, every_minute

pytestmark = pytest.mark.django_db


def url(name: str) -> str:
    return f"/api/schedules/{quote(name)}/backfill/"


def _nothing_written() -> None:
    assert not Backfill.objects.exists()
    assert not AuditEntry.objects.filter(changes__has_key="backfill").exists()


def test_it_starts_a_backfill_and_answers_202_with_its_id_and_count(
    api_admin, sent, django_capture_on_commit_callbacks
):
    daily_at_nine(name="reports/nightly")  # a name with a slash in it

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(
            url("reports/nightly"),
            {"from": "2025-01-01", "to": "2025-01-10T23:00:00+00:00"},
            format="json",
        )

    assert response.status_code == 202, response.content
    data = response_json(response)
    row = Backfill.objects.get()
    assert data["id"] == row.pk
    assert (data["total"], data["published"], data["status"]) == (10, 0, "running")
    assert data["overlap"] == "buffer_all"
    assert data["from"] == "2025-01-01T00:00:00+00:00"
    assert data["url"] == f"http://testserver/api/backfills/{row.pk}/"
    assert row.source == "api"
    assert [message.name for message in sent] == ["scheduler.backfill"]


def test_its_progress_can_be_followed(api_admin, sent):
    daily_at_nine()
    created = response_json(
        api_admin.post(
            url("nightly report"), {"from": "2025-01-01", "to": "2025-01-03"}, format="json"
        )
    )

    before = response_json(api_admin.get(created["url"]))
    backfill_publish(backfill_id=created["id"])
    after = response_json(api_admin.get(created["url"]))

    assert (before["status"], before["published"], before["total"]) == ("running", 0, 2)
    assert (after["status"], after["published"], after["existing"]) == ("done", 2, 0)
    assert after["finished_at"] is not None
    listed = response_json(api_admin.get("/api/backfills/?schedule=nightly%20report"))
    assert [row["id"] for row in listed["results"]] == [created["id"]]


def test_a_dry_run_answers_the_count_and_writes_nothing(api_admin, sent):
    daily_at_nine(tz="Asia/Tokyo")

    response = api_admin.post(
        url("nightly report"),
        {"from": "2025-01-01", "to": "2025-01-31 23:59", "overlap": "skip", "dry_run": True},
        format="json",
    )

    assert response.status_code == 200
    data = response_json(response)
    assert data["dry_run"] is True
    assert (data["total"], data["overlap"], data["timezone"]) == (31, "skip", "Asia/Tokyo")
    assert data["first"] == "2025-01-01T09:00:00+09:00"
    _nothing_written()
    assert sent == []


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"from": "2025-01-01", "to": "2025-01-09 13:44"},
            "to",
            "the range holds 12,345 runs; at most 10,000",
        ),
        ({"from": "2025-01-02", "to": "2025-01-01"}, "to", "is before from"),
        ({"from": "soon", "to": "2025-01-01"}, "from", "'soon' is not an ISO 8601 date or time"),
        (
            {"from": "2025-01-01", "to": "2025-01-02", "overlap": "queue"},
            "overlap",
            "'queue' is not one of allow, skip",
        ),
        ({"to": "2025-01-02"}, "from", "This field is required."),
        ({"from": "2025-01-01", "to": "2025-01-02", "until": "x"}, "until", "is not a field"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(
    api_admin, sent, body, field, message
):
    every_minute(last_run_at=at("2025-01-01 00:00"))

    response = api_admin.post(url("minutely"), body, format="json")

    assert response.status_code == 400
    errors = response_json(response)
    assert field in errors
    assert message in errors[field][0]
    _nothing_written()
    assert sent == []


def test_an_unknown_schedule_or_backfill_is_a_404(api_admin):
    missing = api_admin.post(
        url("ghost"), {"from": "2025-01-01", "to": "2025-01-02"}, format="json"
    )

    assert missing.status_code == 404
    assert response_json(missing) == {"detail": "no periodic task named 'ghost'"}
    assert response_json(api_admin.get("/api/backfills/404/")) == {
        "detail": "no backfill with id 404"
    }


def test_it_needs_the_permission_to_run_tasks(sent):
    daily_at_nine()
    body = {"from": "2025-01-01", "to": "2025-01-03"}

    refused = api_client(user_with("django_celery_beat.change_periodictask")).post(
        url("nightly report"), body, format="json"
    )
    allowed = api_client(user_with("scheduler.run_tasks")).post(
        url("nightly report"), body, format="json"
    )
    anonymous = api_client().post(url("nightly report"), body, format="json")

    assert refused.status_code == 403
    assert response_json(refused) == {"detail": "permission required: scheduler.run_tasks"}
    assert anonymous.status_code in (401, 403)
    assert allowed.status_code == 202
    assert Backfill.objects.count() == 1
