"""A real `celery worker` process, a real Redis and the test database, end to end."""

from __future__ import annotations

import pytest
from django.test import Client
from django_celery_results.models import TaskResult

from scheduler.system.tasks import ping

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_runs_ping_on_a_real_worker_and_stores_its_result(celery_worker):
    result = ping.delay()

    payload = result.get(timeout=30)

    assert payload["pong"] is True
    row = TaskResult.objects.values("status", "task_name", "worker", "date_done").get(
        task_id=result.id
    )
    assert row["status"] == "SUCCESS"
    assert row["task_name"] == "scheduler.ping"
    assert row["worker"] == celery_worker.hostname
    assert row["date_done"] is not None


def test_healthz_sees_the_real_worker(celery_worker):
    response = Client().get("/healthz")

    assert response.status_code == 200, response.content
    assert celery_worker.hostname in response.json()["checks"]["workers"]["data"]["workers"]
