"""The dead letters' admin: read-only rows, secrets masked, and Requeue and Discard actions that
go through the services as the admin's user (source admin), for who may run tasks only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from scheduler.core.masking import MASK
from scheduler.models import AuditEntry, DeadLetter
from scheduler.permissions import RUN_TASKS
from tests.clients import client_for
from tests.factories import make_dead_letter, user_with
from tests.queues import take_queued
from tests.scheduler.admin.helpers import page_messages

pytestmark = pytest.mark.django_db

CHANGELIST_URL = reverse("admin:scheduler_deadletter_changelist")
VIEW = "scheduler.view_deadletter"


def _act(client, action: str, *letters: DeadLetter):
    return client.post(
        CHANGELIST_URL,
        {"action": action, "_selected_action": [letter.pk for letter in letters]},
        follow=True,
    )


def test_it_lists_the_letters_newest_first_with_their_error(admin_client):
    older = make_dead_letter(periodic_task_name="nightly sleep", attempts=4)
    newer = make_dead_letter(error="ValueError: bad input\nmore lines", task_id="abc-123")

    page = admin_client.get(CHANGELIST_URL).content.decode()

    assert page.index(newer.task_id) < page.index(older.task_id)
    assert "nightly sleep" in page
    assert "ValueError: bad input" in page
    assert "more lines" not in page  # the first line only
    assert "requeue_selected" in page
    assert "discard_selected" in page


def test_it_filters_by_status_and_searches_the_start_of_a_task_id(admin_client):
    make_dead_letter(task_id="aaa-1")
    discarded = make_dead_letter(task_id="bbb-2", status=DeadLetter.Status.DISCARDED)

    by_status = admin_client.get(f"{CHANGELIST_URL}?status__exact=discarded").content.decode()
    by_id = admin_client.get(f"{CHANGELIST_URL}?q=bbb").content.decode()

    assert discarded.task_id in by_status
    assert "aaa-1" not in by_status
    assert "bbb-2" in by_id
    assert "aaa-1" not in by_id


def test_its_page_shows_the_arguments_masked_and_nothing_to_edit(admin_client):
    letter = make_dead_letter(kwargs={"seconds": 1, "api_token": "s3cret"})

    response = admin_client.get(reverse("admin:scheduler_deadletter_change", args=[letter.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "s3cret" not in page
    assert MASK in page
    assert "RuntimeError: the run broke" in page
    assert 'name="_save"' not in page


def test_requeue_queues_each_letter_as_the_admins_user(
    admin_client, django_capture_on_commit_callbacks
):
    letter = make_dead_letter()

    with django_capture_on_commit_callbacks(execute=True):
        response = _act(admin_client, "requeue_selected", letter)

    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.REQUEUED
    assert take_queued("default", letter.requeued_as) is not None
    [message] = page_messages(response)
    assert message == f"Requeued: scheduler.sleep ({letter.task_id}) as {letter.requeued_as}."
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.actor) == ("requeued", "admin", letter.resolved_by)
    assert entry.actor is not None


def test_requeue_says_why_a_letter_was_not_requeued(
    admin_client, django_capture_on_commit_callbacks
):
    removed = make_dead_letter(task_name="billing.send_invoices", kwargs={})
    good = make_dead_letter()

    with django_capture_on_commit_callbacks(execute=True):
        response = _act(admin_client, "requeue_selected", removed, good)

    texts = page_messages(response)
    assert any(
        text.startswith(f"billing.send_invoices ({removed.task_id}) was not requeued: task: ")
        and "unknown task 'billing.send_invoices'" in text
        for text in texts
    )
    assert any(text.startswith(f"Requeued: scheduler.sleep ({good.task_id}) as ") for text in texts)
    removed.refresh_from_db()
    assert removed.status == DeadLetter.Status.OPEN
    good.refresh_from_db()
    assert take_queued("default", good.requeued_as) is not None


def test_discard_closes_the_letters(admin_client):
    letters = [make_dead_letter(), make_dead_letter(status=DeadLetter.Status.REQUEUED)]

    response = _act(admin_client, "discard_selected", *letters)

    texts = page_messages(response)
    assert f"Discarded: scheduler.sleep ({letters[0].task_id})." in texts
    assert f"scheduler.sleep ({letters[1].task_id}) was not discarded: " in texts[0]
    statuses = [DeadLetter.objects.get(pk=letter.pk).status for letter in letters]
    assert statuses == ["discarded", "requeued"]


def test_without_permission_to_run_tasks_it_only_shows_them():
    letter = make_dead_letter()
    viewer = client_for(user_with(VIEW))
    runner = client_for(user_with(VIEW, RUN_TASKS))

    page = viewer.get(CHANGELIST_URL).content.decode()
    _act(viewer, "requeue_selected", letter)
    _act(viewer, "discard_selected", letter)

    assert letter.task_id in page
    assert "requeue_selected" not in page
    assert "discard_selected" not in page
    letter.refresh_from_db()
    assert letter.status == DeadLetter.Status.OPEN
    assert "requeue_selected" in runner.get(CHANGELIST_URL).content.decode()
