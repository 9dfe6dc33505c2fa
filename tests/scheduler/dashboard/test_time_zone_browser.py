"""Times in the person's zone, in a real browser: Debian's Chromium set to a zone of its own,
at a phone's size and a laptop's (see tests/browser.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from tests.browser import LiveServer, off_the_loop, screenshot, signed_in_page
from tests.factories import stored_run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"
SIZES = {"phone": {"width": 390, "height": 844}, "laptop": {"width": 1280, "height": 800}}


@pytest.mark.parametrize("size", SIZES)
def test_it_shows_times_in_the_browsers_zone_until_the_person_chooses_one(
    browser: Any, web_server: LiveServer, size: str
) -> None:
    username = f"zones-{size}"
    off_the_loop(
        get_user_model()._default_manager.create_superuser, username, "z@example.com", PASSWORD
    )
    task_id = f"zone-run-{size}"
    off_the_loop(
        stored_run,
        task_id,
        status="SUCCESS",
        task_name="scheduler.sleep",
        started=datetime(2026, 7, 1, 11, 59, 58, tzinfo=UTC),
        done=datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC),
    )
    context = browser.new_context(timezone_id="America/New_York", viewport=SIZES[size])
    try:
        page, errors = signed_in_page(
            context,
            web_server,
            f"/dashboard/tasks/{task_id}/",
            username=username,
            password=PASSWORD,
        )
        # The login page told the server the browser's zone: New York, four hours behind.
        zone_link = page.locator("header .time-zone")
        assert zone_link.inner_text() == "America/New_York"
        assert zone_link.is_visible()
        facts = page.locator("dl.facts").inner_text()
        assert "2026-07-01 08:00:00" in facts, facts

        page.goto(f"{web_server.url}/admin/django_celery_results/taskresult/?q={task_id}")
        assert "America/New_York" in page.locator("#user-tools").text_content()
        assert "July 1, 2026, 8 a.m." in page.locator("#result_list tbody tr").first.inner_text()

        # A chosen zone wins over the browser's, everywhere.
        zone_link_url = f"{web_server.url}/account/time-zone/?next=/dashboard/tasks/{task_id}/"
        page.goto(zone_link_url)
        page.select_option("#id_time_zone", "Asia/Tokyo")
        page.click("button[type=submit]")
        page.wait_for_url(f"{web_server.url}/dashboard/tasks/{task_id}/")
        assert page.locator("header .time-zone").inner_text() == "Asia/Tokyo"
        assert "2026-07-01 21:00:00" in page.locator("dl.facts").inner_text()
        page.goto(f"{web_server.url}/admin/")
        assert "Asia/Tokyo" in page.locator("#user-tools").text_content()
        screenshot(page, f"time-zone-{size}.png")
        assert errors == []
    finally:
        context.close()
