"""The task result admin, through the Django test client: retrying catalog runs with the same
arguments (and refusing the others), who may retry, and the links between results and their
periodic task.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse
from django_celery_results.models import TaskResult

from config.celery import app as celery_app
from scheduler.models import AuditEntry, TaskEvent
from tests.forms import ECHO
from tests.queues import take_queued
from tests.scheduler.admin.helpers import (
    RESULTS_URL,
    change_url,
    make_schedule,
    page_messages,
    results_for,
)

# `echo_entry` (conftest.py): the catalog entry these tests' periodic tasks run.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("echo_entry")]


# --- Results -------------------------------------------------------------------------------------


def test_it_retries_a_catalog_result_with_the_same_arguments(
    admin_client, django_capture_on_commit_callbacks
):
    task = make_schedule(name="echoer", params={"times": 4, "text": "again"})
    results_for(task, "FAILURE")
    result = TaskResult.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            RESULTS_URL, {"action": "retry_selected", "_selected_action": [result.pk]}, follow=True
        )

    queued = TaskEvent.objects.get(type="task.queued", task_name=ECHO)
    message = take_queued("default", queued.task_id)
    assert message is not None
    assert message["headers"]["periodic_task_name"] == "echoer"
    assert json.loads(message["headers"]["kwargsrepr"]) == {"times": 4, "text": "again"}
    assert any("Queued again" in text for text in page_messages(response))


def test_it_refuses_to_retry_a_result_outside_the_catalog(
    admin_client, django_capture_on_commit_callbacks
):
    result = TaskResult.objects.create(
        task_id="legacy-1", task_name="celery.backend_cleanup", status="FAILURE", task_kwargs="{}"
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            RESULTS_URL, {"action": "retry_selected", "_selected_action": [result.pk]}, follow=True
        )

    assert callbacks == []
    assert not TaskEvent.objects.filter(type="task.queued").exists()
    assert any(
        "was not retried" in text and "not in the catalog" in text
        for text in page_messages(response)
    )


def test_it_retries_the_catalog_rows_of_a_mixed_selection(
    admin_client, django_capture_on_commit_callbacks
):
    task = make_schedule(name="echoer")
    results_for(task, "FAILURE")
    legacy = TaskResult.objects.create(task_id="legacy-1", task_name="not.ours", status="FAILURE")
    pks = [*TaskResult.objects.values_list("pk", flat=True)]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            RESULTS_URL, {"action": "retry_selected", "_selected_action": pks}, follow=True
        )

    texts = page_messages(response)
    assert any(f"not.ours ({legacy.task_id}) was not retried" in text for text in texts)
    assert any("Queued again: tests.admin_echo" in text for text in texts)
    queued = TaskEvent.objects.get(type="task.queued")
    assert take_queued("default", queued.task_id) is not None


def test_it_forbids_retry_without_permission_to_run(viewer_client):
    task = make_schedule(name="echoer")
    results_for(task, "FAILURE")

    response = viewer_client.get(RESULTS_URL)

    assert response.status_code == 200
    assert "retry_selected" not in response.content.decode()


@pytest.fixture
def revoked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """The revokes the actions sent (task id, terminate), none reaching a broker."""
    sent: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        celery_app.control,
        "revoke",
        lambda task_id, terminate=False, **options: sent.append((task_id, terminate)),
    )
    return sent


def test_it_terminates_running_runs_and_refuses_to_revoke_them(admin_client, revoked):
    task = make_schedule(name="echoer")
    results_for(task, "STARTED")
    done = TaskResult.objects.create(task_id="done-1", task_name=ECHO, status="SUCCESS")
    running = TaskResult.objects.get(status="STARTED")
    pks = [running.pk, done.pk]

    revoke = admin_client.post(
        RESULTS_URL, {"action": "revoke_selected", "_selected_action": pks}, follow=True
    )
    terminate = admin_client.post(
        RESULTS_URL, {"action": "terminate_selected", "_selected_action": pks}, follow=True
    )

    assert revoked == [(running.task_id, True)]
    assert any("was not revoked" in text and "is running" in text for text in page_messages(revoke))
    texts = page_messages(terminate)
    assert any("was not terminated" in text and "finished already" in text for text in texts)
    assert any("Asked the workers to stop" in text for text in texts)
    entry = AuditEntry.objects.exclude(action="created").get()
    assert (entry.action, entry.periodic_task_name, entry.source) == (
        "terminated",
        "echoer",
        "admin",
    )
    assert entry.changes["task_id"] == [None, running.task_id]


def test_it_forbids_revoke_and_terminate_without_permission_to_run_tasks(viewer_client):
    task = make_schedule(name="echoer")
    results_for(task, "STARTED")

    content = viewer_client.get(RESULTS_URL).content.decode()

    assert "revoke_selected" not in content
    assert "terminate_selected" not in content


# At noon: runs of the last hour fall on one day, as the date hierarchy's query count assumes.
@time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=UTC), tick=False)
def test_it_links_results_back_to_their_periodic_task(admin_client, django_assert_max_num_queries):
    task = make_schedule(name="linked")
    results_for(task, "SUCCESS", "FAILURE")
    TaskResult.objects.create(task_id="gone-1", periodic_task_name="deleted one", status="SUCCESS")

    # 13: the person's time zone is read once per request (scheduler/dashboard/timezones.py).
    with django_assert_max_num_queries(13):
        content = admin_client.get(RESULTS_URL).content.decode()

    assert content.count(f'<a href="{change_url(task)}">linked</a>') == 2
    assert "deleted one (deleted)" in content
    result = TaskResult.objects.get(task_id="linked-0")
    detail = admin_client.get(
        reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
    ).content.decode()
    assert f'<a href="{change_url(task)}">linked</a>' in detail


def test_it_filters_the_run_history_of_one_periodic_task(admin_client):
    results_for(make_schedule(name="mine"), "SUCCESS")
    results_for(make_schedule(name="other"), "SUCCESS")

    response = admin_client.get(RESULTS_URL, {"periodic_task_name": "mine"})

    assert [row.task_id for row in response.context["cl"].result_list] == ["mine-0"]
