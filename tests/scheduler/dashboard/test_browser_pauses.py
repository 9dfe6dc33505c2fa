"""The dashboard's Pause and Resume buttons in a real browser (see test_browser.py): the row is
redrawn by the page's script with who paused it, and without the pause once resumed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from scheduler.schedules import pause_of
from scheduler.services import schedule_get
from tests.browser import TASK_TIMEOUT, off_the_loop, signed_in_page
from tests.factories import make_schedule

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser's password"


def test_pause_and_resume_redraw_the_row_with_the_pause(browser: Any, web_server: Any) -> None:
    off_the_loop(make_schedule, name="morning digest", schedule="every weekday at 8am")
    off_the_loop(
        get_user_model()._default_manager.create_superuser, "boss", "boss@example.com", PASSWORD
    )
    page, errors = signed_in_page(
        browser,
        web_server,
        "/dashboard/",
        username="boss",
        password=PASSWORD,
        viewport={"width": 1440, "height": 900},
    )
    row = page.locator("#periodic-body tr", has_text="morning digest")

    row.locator('button[data-action="pause"]').click()
    row.locator(".pause-line").wait_for(timeout=TASK_TIMEOUT)

    assert row.locator(".pause-line").inner_text() == "paused by boss until resumed"
    pause = off_the_loop(lambda: pause_of(schedule_get("morning digest")))
    assert pause is not None
    assert pause.by == "boss"
    row.locator('button[data-action="resume"]').click()
    row.locator('button[data-action="pause"]').wait_for(timeout=TASK_TIMEOUT)
    assert row.locator(".pause-line").count() == 0
    assert off_the_loop(lambda: schedule_get("morning digest").enabled)
    assert errors == []
