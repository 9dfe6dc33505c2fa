"""The periodic task admin's list and its actions, through the Django test client: the last run of
each task, run now (the button and the action; who may, and a broker that is down), enable,
disable, toggle and delete a selection through the service, and periodic tasks outside the
catalog.

Queuing is checked without a worker: the run's audit entry and event, and the message itself in
the Redis list of its queue (kombu names it after the queue, behind the key prefix). One
integration test, last, runs the button against a real worker.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError

from config.celery import app as celery_app
from scheduler.models import AuditEntry, TaskEvent
from tests.forms import periodic_task_form
from tests.processes import wait_for
from tests.queues import take_queued
from tests.scheduler.admin.helpers import (
    ADD_URL,
    CHANGELIST_URL,
    RESULTS_URL,
    change_url,
    form_errors,
    make_schedule,
    page_messages,
    results_for,
    run_now_url,
)

# `echo_entry` (conftest.py): the catalog entry these tests' periodic tasks run.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("echo_entry")]


# --- Changelist ----------------------------------------------------------------------------------


def test_it_lists_the_last_status_duration_and_history_link(admin_client):
    task = make_schedule(name="reporter")
    results_for(task, "SUCCESS", "FAILURE")

    content = admin_client.get(CHANGELIST_URL).content.decode()

    last = re.search(r'<td class="field-last_status">(.*?)</td>', content)
    assert last is not None
    assert f'href="{RESULTS_URL}?periodic_task_name=reporter"' in last.group(1)
    assert ">FAILURE</a>" in last.group(1)
    assert last.group(1).endswith(" · 1.50 s</span>")


def test_it_lists_without_a_query_per_row(admin_client, django_assert_max_num_queries):
    for n in range(3):
        results_for(make_schedule(name=f"few {n}"), "SUCCESS")
    with django_assert_max_num_queries(50) as few:
        admin_client.get(CHANGELIST_URL)
    for n in range(12):
        results_for(make_schedule(name=f"many {n}"), "SUCCESS", "FAILURE")

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(CHANGELIST_URL)

    assert response.content.decode().count('<td class="field-last_status">') == 15


def test_it_lists_a_one_off_task_by_its_time(admin_client):
    make_schedule(name="later", schedule="2099-01-15 14:30", tz="Europe/Paris")

    content = admin_client.get(CHANGELIST_URL).content.decode()

    assert "once, at 2099-01-15 14:30 CET" in content


# --- Run now -------------------------------------------------------------------------------------


def test_it_queues_a_run_from_the_button(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    task = make_schedule(name="ping now", task="scheduler.ping", schedule="every day at 3am")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(run_now_url(task), follow=True)

    assert response.redirect_chain == [(change_url(task), 302)]
    entry = AuditEntry.objects.get(action="run_now")
    assert (entry.source, entry.actor) == ("admin", admin_user)
    task_id = entry.changes["task_id"][1]
    assert TaskEvent.objects.filter(type="schedule.run_now", periodic_task_name="ping now").exists()
    assert TaskEvent.objects.filter(type="task.queued", task_id=task_id).exists()
    message = take_queued("default", task_id)
    assert message is not None, "the run is not in the Redis list of its queue"
    assert message["headers"]["task"] == "scheduler.ping"
    assert message["headers"]["periodic_task_name"] == "ping now"
    assert any("Queued to run now: ping now" in text for text in page_messages(response))


def test_it_shows_the_run_now_button_to_staff_who_may_run(admin_client, viewer_client):
    task = make_schedule()

    assert 'id="run-now-form"' in admin_client.get(change_url(task)).content.decode()
    viewer_page = viewer_client.get(change_url(task))
    assert viewer_page.status_code == 200
    content = viewer_page.content.decode()
    assert 'id="run-now-form"' not in content
    assert "every day at 2am" in content  # the form's own fields, shown read-only
    assert "Next runs" in content


def test_it_lets_staff_with_change_permission_run_now(viewer, django_capture_on_commit_callbacks):
    viewer.user_permissions.add(
        Permission.objects.get(
            codename="change_periodictask", content_type__app_label="django_celery_beat"
        )
    )
    client = Client()
    client.force_login(viewer)
    task = make_schedule(task="scheduler.ping")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(run_now_url(task))

    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="run_now")
    assert entry.actor == viewer
    assert take_queued("default", entry.changes["task_id"][1]) is not None


def test_it_forbids_run_now_without_change_permission(viewer_client):
    task = make_schedule()

    response = viewer_client.post(run_now_url(task))

    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_runs_now_only_on_post(admin_client):
    task = make_schedule()

    assert admin_client.get(run_now_url(task)).status_code == 405
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_requires_the_csrf_token_to_run_now(admin_user):
    task = make_schedule()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.post(run_now_url(task)).status_code == 403
    assert not AuditEntry.objects.filter(action="run_now").exists()


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    task = make_schedule()

    response = client.post(run_now_url(task))

    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_queues_runs_from_the_action(admin_client, django_capture_on_commit_callbacks):
    first = make_schedule(name="first", task="scheduler.ping")
    second = make_schedule(name="second", params={"times": 2})

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST_URL,
            {"action": "run_now", "_selected_action": [first.pk, second.pk]},
            follow=True,
        )

    entries = AuditEntry.objects.filter(action="run_now")
    assert sorted(entries.values_list("periodic_task_name", flat=True)) == ["first", "second"]
    for entry in entries:
        message = take_queued("default", entry.changes["task_id"][1])
        assert message is not None
        assert message["headers"]["periodic_task_name"] == entry.periodic_task_name
    assert any("Queued to run now" in text for text in page_messages(response))


def test_it_refuses_to_run_a_task_outside_the_catalog(admin_client):
    interval = IntervalSchedule.objects.create(every=1, period="days")
    legacy = PeriodicTask.objects.create(
        name="legacy", task="celery.backend_cleanup", interval=interval
    )

    response = admin_client.post(
        CHANGELIST_URL, {"action": "run_now", "_selected_action": [legacy.pk]}, follow=True
    )

    assert any(
        "legacy was not run" in text
        and "'celery.backend_cleanup', which is outside the catalog" in text
        for text in page_messages(response)
    )
    assert not AuditEntry.objects.filter(action="run_now").exists()
    assert not TaskEvent.objects.filter(type="task.queued").exists()


@pytest.mark.django_db(transaction=True)
def test_it_says_so_when_the_broker_is_down(admin_client, monkeypatch):
    # Committed for real (transaction=True), so the message is sent inside the request.
    task = make_schedule(name="unlucky", task="scheduler.ping")

    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to redis. Connection refused.")

    monkeypatch.setattr(celery_app, "send_task", broker_down)

    response = admin_client.post(run_now_url(task), follow=True)

    assert response.status_code == 200
    assert any(
        "unlucky was not run" in text and "could not be reached" in text
        for text in page_messages(response)
    )
    failed = TaskEvent.objects.get(type="task.failed", periodic_task_name="unlucky")
    assert "could not be queued: OperationalError" in failed.message


def test_it_offers_no_actions_to_staff_who_may_not_change(viewer_client):
    make_schedule()

    response = viewer_client.get(CHANGELIST_URL)

    assert response.status_code == 200
    assert 'name="action"' not in response.content.decode()


# --- Enable and disable --------------------------------------------------------------------------


def test_it_disables_and_enables_through_the_service(admin_client, admin_user):
    tasks = [make_schedule(name=f"task {n}") for n in range(3)]
    pks = [task.pk for task in tasks]

    admin_client.post(CHANGELIST_URL, {"action": "disable_tasks", "_selected_action": pks[:2]})

    assert list(PeriodicTask.objects.order_by("name").values_list("enabled", flat=True)) == [
        False,
        False,
        True,
    ]
    disabled = AuditEntry.objects.filter(action="disabled")
    assert disabled.count() == 2
    assert {(entry.source, entry.actor) for entry in disabled} == {("admin", admin_user)}

    response = admin_client.post(
        CHANGELIST_URL, {"action": "enable_tasks", "_selected_action": pks}, follow=True
    )

    assert PeriodicTask.objects.filter(enabled=True).count() == 3
    assert AuditEntry.objects.filter(action="enabled").count() == 2
    assert any("2 tasks enabled (1 already enabled)" in text for text in page_messages(response))


def test_it_toggles_through_the_service(admin_client):
    on = make_schedule(name="on")
    off = make_schedule(name="off", enabled=False)

    admin_client.post(
        CHANGELIST_URL, {"action": "toggle_tasks", "_selected_action": [on.pk, off.pk]}
    )

    assert dict(PeriodicTask.objects.values_list("name", "enabled")) == {"on": False, "off": True}
    assert set(
        AuditEntry.objects.filter(action__in=["enabled", "disabled"]).values_list(
            "periodic_task_name", "action"
        )
    ) == {("on", "disabled"), ("off", "enabled")}


# --- Delete a selection --------------------------------------------------------------------------


def test_it_deletes_a_selection_through_the_service(admin_client):
    tasks = [make_schedule(name=f"old {n}") for n in range(2)]

    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [t.pk for t in tasks], "post": "yes"},
    )

    assert response.status_code == 302
    assert not PeriodicTask.objects.exists()
    assert sorted(
        AuditEntry.objects.filter(action="deleted").values_list("periodic_task_name", flat=True)
    ) == ["old 0", "old 1"]


# --- Periodic tasks outside the catalog ----------------------------------------------------------


def _outside_catalog(name: str = "legacy", *, enabled: bool = False) -> PeriodicTask:
    interval = IntervalSchedule.objects.create(every=1, period="days")
    return PeriodicTask.objects.create(
        name=name, task="billing.send_invoices", interval=interval, enabled=enabled
    )


def test_it_labels_a_periodic_task_outside_the_catalog_in_the_list(admin_client):
    _outside_catalog()
    make_schedule(name="ours")

    content = admin_client.get(CHANGELIST_URL).content.decode()

    assert content.count("outside the catalog") == 1
    assert "billing.send_invoices — outside the catalog" in content


def test_it_refuses_to_enable_or_edit_a_periodic_task_outside_the_catalog(admin_client):
    legacy = _outside_catalog()

    enabled = admin_client.post(
        CHANGELIST_URL, {"action": "enable_tasks", "_selected_action": [legacy.pk]}, follow=True
    )
    edited = admin_client.get(change_url(legacy))
    form = edited.context["adminform"].form
    saved = admin_client.post(
        change_url(legacy),
        {
            **{name: value for name, value in form.initial.items() if value is not None},
            **periodic_task_form(
                name="legacy",
                task="billing.send_invoices",
                kwargs="{}",
                schedule="",
                timezone="UTC",
                interval=legacy.interval_id,
                overlap="default",
                description="renamed?",
            ),
        },
    )

    assert any(
        "Nothing was enabled: task: 'legacy' run 'billing.send_invoices', outside the catalog"
        in text
        for text in page_messages(enabled)
    )
    assert "billing.send_invoices (outside the catalog)" in edited.content.decode()
    assert saved.status_code == 200
    (message,) = form_errors(saved)["task"]
    assert "can be disabled or deleted, not edited" in message
    legacy.refresh_from_db()
    assert (legacy.enabled, legacy.description) == (False, "")


def test_it_disables_and_deletes_a_periodic_task_outside_the_catalog(admin_client):
    legacy = _outside_catalog(enabled=True)

    admin_client.post(CHANGELIST_URL, {"action": "disable_tasks", "_selected_action": [legacy.pk]})
    legacy.refresh_from_db()
    assert not legacy.enabled
    admin_client.post(
        reverse("admin:django_celery_beat_periodictask_delete", args=[legacy.pk]), {"post": "yes"}
    )

    assert not PeriodicTask.objects.filter(name="legacy").exists()


# --- With a real worker --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_on_a_real_worker_from_the_button(celery_worker, admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        ADD_URL, periodic_task_form(name="ping via admin", task="scheduler.ping", kwargs="{}")
    )
    assert response.status_code == 302, form_errors(response)
    task = PeriodicTask.objects.get(name="ping via admin")

    response = client.post(run_now_url(task))

    assert response.status_code == 302
    runs = TaskResult.objects.filter(periodic_task_name="ping via admin", status="SUCCESS")
    wait_for(runs.exists, timeout=30, what="the run queued by the button to succeed")
    assert runs.values_list("worker", flat=True).get() == celery_worker.hostname
    history = client.get(RESULTS_URL, {"periodic_task_name": "ping via admin"})
    assert "SUCCESS" in history.content.decode()
    changelist = client.get(CHANGELIST_URL).content.decode()
    assert re.search(r'<td class="field-last_status"><a [^>]*>SUCCESS</a>', changelist)
