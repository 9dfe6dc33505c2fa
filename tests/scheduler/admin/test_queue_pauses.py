"""Paused queues in the admin: listed with who paused them, resumed by staff who may control
workers, refused to those who may not."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from scheduler.models import AuditEntry, QueuePause
from scheduler.services import queue_pause

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:scheduler_queuepause_changelist")


def _staff(django_user_model, *codenames: str):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_queuepause", *codenames])
    )
    return user


def test_it_lists_a_paused_queue_with_who_paused_it(client, django_user_model):
    queue_pause(queue="webhooks", note="partner down", actor_name="alice")
    client.force_login(_staff(django_user_model))

    page = client.get(CHANGELIST).content.decode()

    assert "webhooks" in page
    assert "alice" in page
    assert "partner down" in page


def test_resume_deletes_the_pause_and_is_audited(client, django_user_model):
    queue_pause(queue="webhooks", actor_name="alice")
    client.force_login(_staff(django_user_model, "control_workers"))

    response = client.post(
        CHANGELIST,
        {"action": "resume", "_selected_action": [QueuePause.objects.get().pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert not QueuePause.objects.exists()
    entry = AuditEntry.objects.get(action="queue_resumed")
    assert entry.actor is not None
    assert (entry.periodic_task_name, entry.source, entry.actor.get_username()) == (
        "queue:webhooks",
        "admin",
        "ops",
    )


def test_without_control_workers_there_is_no_resume(client, django_user_model):
    queue_pause(queue="webhooks", actor_name="alice")
    client.force_login(_staff(django_user_model))

    client.post(CHANGELIST, {"action": "resume", "_selected_action": [QueuePause.objects.get().pk]})

    assert QueuePause.objects.filter(queue="webhooks").exists()
