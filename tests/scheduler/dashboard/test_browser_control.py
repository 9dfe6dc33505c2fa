"""The dashboard's controls of runs and queues in a real browser (see test_browser.py): a queue
paused from its panel (with a note), a run queued there revoked from the live feed (its row
turns revoked at once), the queue purged after its name was typed, and resumed; each audited as
the dashboard's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from config.celery import app
from scheduler.models import AuditEntry, QueuePause
from tests.browser import TASK_TIMEOUT, LiveServer, off_the_loop, screenshot, signed_in_page
from tests.processes import RunningProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"
SLEEP = {"task": "scheduler.sleep", "params": {"seconds": 0.1}}


@pytest.fixture
def default_consumed_again(celery_worker: RunningProcess) -> Iterator[None]:
    yield
    off_the_loop(lambda: QueuePause.objects.all().delete())
    app.control.add_consumer("default", destination=[celery_worker.hostname], reply=True, timeout=2)


def _queue(page: Any, body: dict[str, Any]) -> str:
    """POST /api/tasks/ from the page itself, with its session and CSRF token."""
    response = page.evaluate(
        """async (body) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const response = await fetch("/api/tasks/", {
                method: "POST",
                credentials: "same-origin",
                headers: {"Content-Type": "application/json", "X-CSRFToken": token},
                body: JSON.stringify(body),
            });
            return {status: response.status, body: await response.json()};
        }""",
        body,
    )
    assert response["status"] == 202, response
    return str(response["body"]["task_id"])


def test_pause_revoke_purge_and_resume_from_the_dashboard(
    browser: Any, web_server: LiveServer, default_consumed_again: None
) -> None:
    off_the_loop(
        get_user_model()._default_manager.create_superuser, "ops", "ops@example.com", PASSWORD
    )
    page, errors = signed_in_page(
        browser,
        web_server,
        "/dashboard/",
        username="ops",
        password=PASSWORD,
        viewport={"width": 1440, "height": 900},
    )
    queue_row = page.locator('#queues tr[data-queue="default"]')

    page.once("dialog", lambda dialog: dialog.accept("incident 12"))
    queue_row.locator('button[data-action="queue-pause"]').click()
    queue_row.locator(".badge-paused").wait_for(timeout=TASK_TIMEOUT)
    assert queue_row.locator(".badge-paused").get_attribute("title") == "paused by ops: incident 12"

    task_id = _queue(page, SLEEP)
    feed_row = page.locator(f'#feed-body tr[data-task-id="{task_id}"]')
    feed_row.locator('button[data-action="revoke"]').wait_for(timeout=TASK_TIMEOUT)
    page.once("dialog", lambda dialog: dialog.accept())
    feed_row.locator('button[data-action="revoke"]').click()
    page.locator(f'#feed-body tr[data-task-id="{task_id}"][data-state="REVOKED"]').wait_for(
        timeout=TASK_TIMEOUT
    )
    assert feed_row.locator("button[data-action]").count() == 0
    # No longer waiting: the queued counter says so at once.
    page.wait_for_function(
        "() => document.querySelector('[data-counter=queued]').textContent === '0'",
        timeout=TASK_TIMEOUT,
    )
    screenshot(page, "dashboard-queue-paused.png")

    page.once("dialog", lambda dialog: dialog.accept("default"))
    queue_row.locator('button[data-action="queue-purge"]').click()
    page.locator("#notice").filter(has_text="Purged queue default: 1 message removed.").wait_for(
        timeout=TASK_TIMEOUT
    )

    queue_row.locator('button[data-action="queue-resume"]').click()
    queue_row.locator('button[data-action="queue-pause"]').wait_for(timeout=TASK_TIMEOUT)
    assert queue_row.locator(".badge-paused").count() == 0
    audit = off_the_loop(
        lambda: list(AuditEntry.objects.order_by("id").values_list("action", "source"))
    )
    assert audit == [
        ("queue_paused", "dashboard"),
        ("task_run", "api"),  # the run the test queued through the API (`_queue`)
        ("revoked", "dashboard"),
        ("queue_purged", "dashboard"),
        ("queue_resumed", "dashboard"),
    ]
    assert errors == []
