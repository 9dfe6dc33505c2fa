"""The dashboard's events panel in a real browser: custom events (`scheduler.live.publish`) from
the backfill and live, with their type, source and priority; other apps' traffic left out."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from scheduler.live import event_record, publish
from tests.browser import TASK_TIMEOUT, LiveServer, off_the_loop, screenshot, signed_in_page

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"


def _history() -> None:
    get_user_model()._default_manager.create_superuser("admin", "admin@example.com", PASSWORD)
    publish("report.published", {"message": "120 rows"}, source="reports", priority="high")
    # A chat message is an event too, but the chat page's: not in this panel.
    event_record(type="session.message", message="hello", object_type="session", object_id=1)


def test_it_lists_custom_events_from_the_backfill_and_live(browser: Any, web_server: LiveServer):
    off_the_loop(_history)
    page, errors = signed_in_page(
        browser, web_server, "/dashboard/", username="admin", password=PASSWORD
    )

    backfilled = page.locator('#events-body tr[data-type="report.published"]')
    backfilled.wait_for(state="attached", timeout=TASK_TIMEOUT)
    cells = backfilled.locator("td").all_inner_texts()
    assert cells[1:] == ["report.published", "high", "reports", "120 rows"]
    assert page.locator("#events-body tr.placeholder").count() == 0
    assert page.locator('#events-body tr[data-type="session.message"]').count() == 0

    off_the_loop(publish, "deploy.finished", ["v2"], priority="critical")

    live = page.locator('#events-body tr[data-type="deploy.finished"]')
    live.wait_for(state="attached", timeout=TASK_TIMEOUT)
    cells = live.locator("td").all_inner_texts()
    assert cells[1:] == ["deploy.finished", "critical", "—", '["v2"]']
    assert live.locator(".badge-priority-critical").count() == 1
    # Newest first.
    assert page.locator("#events-body tr").first.get_attribute("data-type") == "deploy.finished"
    assert errors == []
    screenshot(page, "dashboard-events.png")
