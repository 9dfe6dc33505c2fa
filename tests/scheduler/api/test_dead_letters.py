"""`/api/dead-letters/`: list and read dead letters (arguments masked), requeue and discard them,
with their answers to bad input (400), unknown ids (404), resolved letters (409) and callers
who may not (401, 403); all JSON."""

from __future__ import annotations

import json

import pytest

from scheduler.core.masking import MASK
from scheduler.models import AuditEntry, DeadLetter
from scheduler.permissions import RUN_TASKS
from tests.clients import api_client, response_json
from tests.factories import make_dead_letter, user_with
from tests.queues import take_queued

pytestmark = pytest.mark.django_db

LIST = "/api/dead-letters/"


def _url(letter: DeadLetter | int, action: str = "") -> str:
    pk = letter if isinstance(letter, int) else letter.pk
    return f"{LIST}{pk}/" + (f"{action}/" if action else "")


# --- reading -------------------------------------------------------------------------------------


def test_it_lists_open_letters_newest_first_in_pages(api_admin):
    letters = [make_dead_letter() for _ in range(3)]
    make_dead_letter(status=DeadLetter.Status.DISCARDED)

    first = response_json(api_admin.get(f"{LIST}?page_size=2"))
    second = response_json(api_admin.get(first["next"]))

    assert first["count"] == 3
    ids = [row["id"] for row in first["results"] + second["results"]]
    assert ids == [letter.pk for letter in reversed(letters)]
    row = first["results"][0]
    assert row["status"] == "open"
    assert row["requeueable"] is True
    assert row["error_summary"] == "RuntimeError: the run broke"
    assert row["url"].endswith(_url(letters[-1]))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=all", {"open-1", "gone-2", "other-3"}),
        ("status=discarded", {"gone-2"}),
        ("task=scheduler.ping", {"other-3"}),
        ("q=gone", set()),  # the default status still applies: open only
        ("status=all&q=gone", {"gone-2"}),
        ("status=all&q=PING", {"other-3"}),
    ],
)
def test_it_filters_by_status_task_and_text(api_admin, query, expected):
    make_dead_letter(task_id="open-1")
    make_dead_letter(task_id="gone-2", status=DeadLetter.Status.DISCARDED)
    make_dead_letter(task_id="other-3", task_name="scheduler.ping", kwargs={})

    rows = response_json(api_admin.get(f"{LIST}?{query}"))["results"]

    assert {row["task_id"] for row in rows} == expected


def test_it_answers_400_to_an_unknown_status(api_admin):
    response = api_admin.get(f"{LIST}?status=lost")

    assert response.status_code == 400
    assert "status" in response_json(response)


def test_it_shows_one_letter_with_its_arguments_masked(api_admin):
    letter = make_dead_letter(kwargs={"seconds": 1, "password": "hunter2"}, object_type="agent")

    body = response_json(api_admin.get(_url(letter)))

    assert body["kwargs"] == {"seconds": 1, "password": MASK}
    assert "hunter2" not in json.dumps(body)
    assert body["task_id"] == letter.task_id
    assert body["object"] == {"type": "agent", "id": ""}


@pytest.mark.parametrize("path", ["999999/", "abc/", "1234567890123456789/", "-1/"])
def test_it_answers_404_json_to_an_unknown_or_bad_id(api_admin, path):
    for suffix in ("", "requeue/", "discard/"):
        method = api_admin.get if not suffix else api_admin.post
        response = method(f"{LIST}{path}{suffix}")

        assert response.status_code == 404, (path, suffix)
        assert "detail" in response_json(response)


# --- requeue and discard -------------------------------------------------------------------------


def test_it_requeues_a_letter_and_answers_202_with_the_new_task(
    api_admin, django_capture_on_commit_callbacks
):
    letter = make_dead_letter()

    with django_capture_on_commit_callbacks(execute=True):
        response = api_admin.post(_url(letter, "requeue"))

    assert response.status_code == 202, response.content
    body = response_json(response)
    assert body["status"] == "queued"
    assert body["dead_letter_id"] == letter.pk
    assert body["url"].endswith(f"/api/tasks/{body['task_id']}/")
    assert take_queued("default", body["task_id"]) is not None
    letter.refresh_from_db()
    assert (letter.status, letter.requeued_as) == ("requeued", body["task_id"])
    assert AuditEntry.objects.get().source == "api"


def test_a_second_requeue_or_discard_answers_409(api_admin, django_capture_on_commit_callbacks):
    letter = make_dead_letter()
    with django_capture_on_commit_callbacks(execute=True):
        first = api_admin.post(_url(letter, "requeue"))
    assert take_queued("default", response_json(first)["task_id"]) is not None

    again = api_admin.post(_url(letter, "requeue"))
    discard = api_admin.post(_url(letter, "discard"))

    assert again.status_code == discard.status_code == 409
    assert response_json(again) == {"detail": f"dead letter {letter.pk} was requeued already"}
    assert AuditEntry.objects.count() == 1


def test_a_run_the_catalog_refuses_now_answers_400_naming_the_field(api_admin):
    removed = make_dead_letter(task_name="billing.send_invoices", kwargs={})
    invalid = make_dead_letter(kwargs={"seconds": "soon"})

    task = api_admin.post(_url(removed, "requeue"))
    params = api_admin.post(_url(invalid, "requeue"))

    assert task.status_code == params.status_code == 400
    assert "unknown task 'billing.send_invoices'" in response_json(task)["task"][0]
    assert "seconds" in response_json(params)["params"][0]
    assert set(DeadLetter.objects.values_list("status", flat=True)) == {"open"}


def test_it_discards_a_letter_and_answers_it(api_admin):
    letter = make_dead_letter()

    response = api_admin.post(_url(letter, "discard"))

    assert response.status_code == 200
    body = response_json(response)
    assert (body["id"], body["status"], body["requeueable"]) == (letter.pk, "discarded", False)
    assert body["resolved_by"] is not None


# --- who may ------------------------------------------------------------------------------------


def test_staff_without_permission_to_run_tasks_may_read_but_not_resolve():
    letter = make_dead_letter()
    reader = api_client(user_with())
    runner = api_client(user_with(RUN_TASKS))

    assert reader.get(LIST).status_code == 200
    assert reader.get(_url(letter)).status_code == 200
    for action in ("requeue", "discard"):
        refused = reader.post(_url(letter, action))
        assert refused.status_code == 403
        assert response_json(refused) == {"detail": f"permission required: {RUN_TASKS}"}
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.OPEN
    assert runner.post(_url(letter, "discard")).status_code == 200


def test_callers_who_are_not_staff_get_nothing():
    letter = make_dead_letter()
    anonymous = api_client()
    outsider = api_client(user_with(RUN_TASKS, staff=False))

    for client, code in ((anonymous, 401), (outsider, 403)):
        assert client.get(LIST).status_code == code
        assert client.get(_url(letter)).status_code == code
        assert client.post(_url(letter, "requeue")).status_code == code
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.OPEN
