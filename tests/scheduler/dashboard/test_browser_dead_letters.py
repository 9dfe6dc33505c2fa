"""The dead letters panel in a real browser (see test_browser.py): a run that fails on the real
worker shows up live, and one click of Requeue queues it again and takes its row away."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from scheduler.models import DeadLetter
from tests.browser import TASK_TIMEOUT, LiveServer, off_the_loop, screenshot, signed_in_page

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"
# A message for a session that does not exist: agents.process_message fails at once, no retry.
FAILING_RUN = {"task": "agents.process_message", "params": {"session_id": 999_999, "text": "hi"}}


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


def _letter_row(page: Any, task_id: str) -> Any:
    """The panel's row of the letter of run `task_id`, once it is there (live)."""
    link = f'a[href$="/tasks/{task_id}/"]'
    page.locator(f"#dead-letters-body {link}").wait_for(timeout=TASK_TIMEOUT)
    return page.locator("#dead-letters-body tr", has=page.locator(link))


def test_a_dead_letter_shows_up_live_and_one_click_requeues_it(browser, web_server: LiveServer):
    off_the_loop(
        get_user_model()._default_manager.create_superuser, "admin", "admin@example.com", PASSWORD
    )
    page, errors = signed_in_page(
        browser, web_server, "/dashboard/", username="admin", password=PASSWORD
    )
    assert page.locator("#dead-letters-open").inner_text() == "0"

    failed = _queue(page, FAILING_RUN)
    row = _letter_row(page, failed)
    assert page.locator("#dead-letters-open").inner_text() == "1"
    assert "PermanentError" in row.locator(".c-error").inner_text()
    letter_id = row.get_attribute("data-dead-letter-id")

    row.locator("button[data-action=requeue]").click()

    page.locator("#notice").filter(has_text="Queued task").wait_for(timeout=TASK_TIMEOUT)
    page.locator(f'#dead-letters-body tr[data-dead-letter-id="{letter_id}"]').wait_for(
        state="detached", timeout=TASK_TIMEOUT
    )
    letter = off_the_loop(DeadLetter.objects.get, pk=letter_id)
    assert letter.status == DeadLetter.Status.REQUEUED
    # The new run went to the worker, failed the same way, and is a letter of its own.
    _letter_row(page, letter.requeued_as)
    assert errors == []
    screenshot(page, "dashboard-dead-letters.png")
